//! The store backend: keyed state as bytes in a [`StateStore`] (RocksDB in the daemons), with
//! a bounded write-back cache of decoded values in front of it.
//!
//! Flink's RocksDB backend decodes a value on every read and encodes it on every write. Here an
//! access decodes the value once into the state's cache; later accesses to the same key and
//! namespace use the object, and changed objects are encoded and written back in one batch when
//! the cache is full, before a snapshot, and before anything that reads the store directly
//! (iteration, counting). The cache holds at most `cache_capacity` entries over all states, so
//! memory stays bounded however many keys the state has; the store holds the rest.
//!
//! Snapshots are the heap backend's format (one [`GroupImage`] per key group, entries in the
//! same order, values as the same codec bytes), so a job can move between the backends through
//! any checkpoint or savepoint, and at any parallelism.

use super::image::{EntryImage, GroupImage, ListCodec, StateImage};
use super::store::{
    StateStore, StoreKey, WriteBatch, group_end, group_start, key_prefix, parse_key, prefix_end,
    push_state_and_namespace,
};
use super::{
    KeyGroupRange, KeyGroupSnapshot, KeyedSnapshot, KeyedStateBackend, ListState, MapCodecs, MapState, Namespace,
    NativeSnapshot, ReduceFn, Reducer, ReducingState, StateCodec, StateError, StateKey, StateResult, StateType,
    ValueState, decode_exact, encode_to_vec, key_group_of,
};
use crate::row::Value;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

/// Entries the cache holds over all states unless told otherwise.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// One cached entry: the decoded value (`None`: absent in the store, or removed) and whether
/// it differs from the store.
struct Slot<T> {
    value: Option<T>,
    dirty: bool,
}

/// One registered state: its codec, its reduce function, and its cached entries by store key.
struct StateCache<T> {
    name: String,
    codec: Box<dyn StateCodec<T>>,
    reduce: Option<ReduceFn<T>>,
    slots: BTreeMap<Vec<u8>, Slot<T>>,
}

/// What the backend needs of a state's cache without knowing its type.
trait ErasedCache: Send {
    fn name(&self) -> &str;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
    /// Encodes every changed entry into `batch` and marks it clean.
    fn write_back(&mut self, batch: &mut WriteBatch) -> StateResult<()>;
    /// Drops every entry (changed ones must have been written back).
    fn clear(&mut self);
    /// Whether `bytes` decode as a value of this state.
    fn check(&self, bytes: &[u8]) -> StateResult<()>;
}

impl<T: StateType> ErasedCache for StateCache<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn write_back(&mut self, batch: &mut WriteBatch) -> StateResult<()> {
        for (key, slot) in self.slots.iter_mut().filter(|(_, slot)| slot.dirty) {
            let bytes = match &slot.value {
                Some(value) => {
                    let mut bytes = Vec::new();
                    self.codec.encode(value, &mut bytes)?;
                    Some(bytes)
                }
                None => None,
            };
            batch.push((key.clone(), bytes));
            slot.dirty = false;
        }
        Ok(())
    }

    fn clear(&mut self) {
        debug_assert!(self.slots.values().all(|slot| !slot.dirty), "clearing unwritten state");
        self.slots.clear();
    }

    fn check(&self, bytes: &[u8]) -> StateResult<()> {
        self.codec.decode(bytes).map(|_| ())
    }
}

/// The current key: its value, and once it is known to be owned, its group and store prefix.
struct CurrentKey {
    key: Value,
    /// `Ok(group)` when owned, the refusal otherwise.
    group: Result<u32, StateError>,
    /// `[key group][length][key]` (valid when `group` is `Ok`).
    prefix: Vec<u8>,
}

/// Keyed state in a [`StateStore`], for the key groups of one subtask.
pub struct StoreKeyedStateBackend {
    max_parallelism: u32,
    range: KeyGroupRange,
    store: Box<dyn StateStore>,
    current: CurrentKey,
    caches: Vec<Box<dyn ErasedCache>>,
    /// Entries cached over all states.
    cached: usize,
    cache_capacity: usize,
    /// Scratch: the store key being accessed.
    scratch: Vec<u8>,
    /// Whether snapshots may be the store's own checkpoints (see [`NativeSnapshot`]).
    native_snapshots: bool,
}

impl std::fmt::Debug for StoreKeyedStateBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.caches.iter().map(|cache| cache.name()).collect();
        f.debug_struct("StoreKeyedStateBackend")
            .field("max_parallelism", &self.max_parallelism)
            .field("range", &self.range)
            .field("states", &names)
            .field("cached", &self.cached)
            .finish()
    }
}

impl StoreKeyedStateBackend {
    /// A backend owning `range` of `max_parallelism` key groups over `store`, which must hold
    /// no state yet (or only this backend's, written by an earlier instance of it).
    pub fn new(max_parallelism: u32, range: KeyGroupRange, store: Box<dyn StateStore>) -> StoreKeyedStateBackend {
        StoreKeyedStateBackend::with_cache_capacity(max_parallelism, range, store, DEFAULT_CACHE_CAPACITY)
    }

    /// [`StoreKeyedStateBackend::new`] with a cache of `capacity` entries (at least one).
    pub fn with_cache_capacity(
        max_parallelism: u32,
        range: KeyGroupRange,
        store: Box<dyn StateStore>,
        capacity: usize,
    ) -> StoreKeyedStateBackend {
        assert!(max_parallelism > 0, "max parallelism must be positive");
        assert!(range.end <= max_parallelism, "range {range:?} beyond {max_parallelism} key groups");
        let no_key = StateError::Codec { message: "no current key".to_string() };
        let current = CurrentKey { key: Value::Null, group: Err(no_key), prefix: Vec::new() };
        let mut backend = StoreKeyedStateBackend {
            max_parallelism,
            range,
            store,
            current,
            caches: Vec::new(),
            cached: 0,
            cache_capacity: capacity.max(1),
            scratch: Vec::new(),
            native_snapshots: false,
        };
        // `Value::Null` is the current key until the first `set_current_key`, as in the heap.
        let _ = backend.set_current_key(Value::Null);
        backend
    }

    fn group_of(&self, key: &Value) -> Result<u32, StateError> {
        let key_group = key_group_of(key, self.max_parallelism);
        if !self.range.contains(key_group) {
            return Err(StateError::KeyOutOfRange { key: key.to_string(), key_group, range: self.range });
        }
        Ok(key_group)
    }

    fn register<T: StateType>(
        &mut self,
        name: &str,
        codec: Box<dyn StateCodec<T>>,
        reduce: Option<ReduceFn<T>>,
    ) -> u32 {
        assert!(self.caches.iter().all(|cache| cache.name() != name), "state `{name}` is registered twice");
        assert!(self.caches.len() < usize::from(u16::MAX), "more than {} states", u16::MAX);
        self.caches.push(Box::new(StateCache { name: name.to_string(), codec, reduce, slots: BTreeMap::new() }));
        self.caches.len() as u32 - 1
    }

    fn store_error(message: String) -> StateError {
        StateError::Store { message }
    }

    /// Writes every changed cached entry to the store; with `clear`, empties the cache too.
    fn write_back(&mut self, clear: bool) -> StateResult<()> {
        let mut batch = WriteBatch::new();
        for cache in &mut self.caches {
            cache.write_back(&mut batch)?;
        }
        if !batch.is_empty() {
            self.store.write(&batch).map_err(Self::store_error)?;
        }
        if clear {
            self.caches.iter_mut().for_each(|cache| cache.clear());
            self.cached = 0;
        }
        Ok(())
    }

    /// The cached entry of state `id` for the current key at `at`, read from the store on a
    /// miss. `None` when the current key is not owned here: an error instead when `create`
    /// (the caller is about to store state for it).
    fn slot<T: StateType>(&mut self, id: u32, at: Namespace, create: bool) -> StateResult<Option<&mut Slot<T>>> {
        match &self.current.group {
            Ok(_) => {}
            Err(error) if create => return Err(error.clone()),
            Err(_) => return Ok(None),
        }
        let mut key = std::mem::take(&mut self.scratch);
        key.clear();
        key.extend_from_slice(&self.current.prefix);
        push_state_and_namespace(id, at, &mut key);
        let cached = self.cache::<T>(id).slots.contains_key(&key);
        if !cached {
            if self.cached >= self.cache_capacity {
                self.write_back(true)?;
            }
            let bytes = self.store.get(&key).map_err(Self::store_error)?;
            let cache = self.cache::<T>(id);
            let value = bytes.map(|bytes| cache.codec.decode(&bytes)).transpose()?;
            cache.slots.insert(key.clone(), Slot { value, dirty: false });
            self.cached += 1;
        }
        self.scratch = key;
        let key = &self.scratch;
        let caches = &mut self.caches;
        let cache = caches[id as usize].as_any_mut().downcast_mut::<StateCache<T>>();
        let Some(cache) = cache else { panic!("state handle {id} used with another type") };
        Ok(cache.slots.get_mut(key))
    }

    fn cache<T: StateType>(&mut self, id: u32) -> &mut StateCache<T> {
        let cache = self.caches[id as usize].as_any_mut().downcast_mut::<StateCache<T>>();
        cache.unwrap_or_else(|| panic!("state handle {id} used with another type"))
    }

    fn cache_ref<T: StateType>(&self, id: u32) -> &StateCache<T> {
        let cache = self.caches[id as usize].as_any().downcast_ref::<StateCache<T>>();
        cache.unwrap_or_else(|| panic!("state handle {id} used with another type"))
    }

    /// Visits every entry of the store (after writing the cache back) in store order.
    fn scan(&mut self, visit: &mut dyn FnMut(StoreKey, &[u8]) -> StateResult<()>) -> StateResult<()> {
        self.write_back(false)?;
        if self.range.is_empty() {
            return Ok(());
        }
        let (from, to) = (group_start(self.range.start).to_vec(), group_end(self.range.end - 1));
        self.scan_range(&from, &to, visit)
    }

    /// Visits the store's entries with keys in `[from, to)`, parsed, as they are in the store
    /// (the cache is not written back first).
    fn scan_range(
        &mut self,
        from: &[u8],
        to: &[u8],
        visit: &mut dyn FnMut(StoreKey, &[u8]) -> StateResult<()>,
    ) -> StateResult<()> {
        let mut failure = None;
        let scanned = self.store.scan(from, to, &mut |key, value| {
            let result = parse_key(key)
                .map_err(|message| StateError::Store { message: format!("a malformed key in the store: {message}") })
                .and_then(|key| visit(key, value));
            match result {
                Ok(()) => true,
                Err(error) => {
                    failure = Some(error);
                    false
                }
            }
        });
        scanned.map_err(Self::store_error)?;
        failure.map_or(Ok(()), Err)
    }

    /// Entries of the store for one key group range, as snapshot images: per state (in
    /// registration order), entries by key then namespace, as the heap backend orders them.
    fn group_images(&mut self) -> StateResult<BTreeMap<u32, Vec<Vec<EntryImage>>>> {
        let states = self.caches.len();
        let mut groups: BTreeMap<u32, Vec<Vec<EntryImage>>> = BTreeMap::new();
        self.scan(&mut |key, value| {
            let per_state = groups.entry(key.key_group).or_insert_with(|| (0..states).map(|_| Vec::new()).collect());
            let Some(entries) = per_state.get_mut(key.state as usize) else {
                return Err(StateError::Store { message: format!("an entry of unregistered state {}", key.state) });
            };
            entries.push(EntryImage { key: key.key, namespace: key.namespace, value: value.to_vec() });
            Ok(())
        })?;
        for per_state in groups.values_mut() {
            for entries in per_state {
                entries.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| a.namespace.cmp(&b.namespace)));
            }
        }
        Ok(groups)
    }

    fn restore_group(&mut self, key_group: u32, bytes: &[u8], batch: &mut WriteBatch) -> StateResult<()> {
        let corrupt = |message: String| StateError::Corrupt { key_group, message };
        let image: GroupImage = decode_exact(bytes).map_err(corrupt)?;
        let mut key = Vec::new();
        for state in image.states {
            let Some(id) = self.caches.iter().position(|cache| cache.name() == state.name) else {
                return Err(StateError::UnknownState { name: state.name });
            };
            let mut seen = BTreeSet::new();
            for entry in state.entries {
                let found = key_group_of(&entry.key, self.max_parallelism);
                if found != key_group {
                    return Err(corrupt(format!("key {} belongs to key group {found}", entry.key)));
                }
                self.caches[id].check(&entry.value).map_err(|error| corrupt(error.to_string()))?;
                key_prefix(key_group, &entry.key, &mut key)?;
                push_state_and_namespace(id as u32, entry.namespace, &mut key);
                if !seen.insert(key.clone()) {
                    return Err(corrupt(format!("state `{}` holds an entry twice", state.name)));
                }
                batch.push((key.clone(), Some(entry.value)));
            }
        }
        Ok(())
    }
}

impl StoreKeyedStateBackend {
    /// The one native snapshot of exactly this backend's key groups whose state ids are this
    /// backend's (its states registered in the same order), if that is what `snapshots` are.
    fn adoptable<'a>(&self, snapshots: &[&'a KeyedSnapshot]) -> Option<&'a NativeSnapshot> {
        let [snapshot] = snapshots else { return None };
        let native = snapshot.native.as_ref()?;
        let same_groups = snapshot.key_group_range == self.range && snapshot.max_parallelism == self.max_parallelism;
        let same_ids = native.state_names.len() <= self.caches.len()
            && native.state_names.iter().zip(&self.caches).all(|(name, cache)| cache.name() == name);
        (same_groups && same_ids).then_some(native)
    }

    /// Reads the owned key groups of a native snapshot of `range` into `batch`, renumbering
    /// the states by name (a rescale, or states registered in another order).
    fn restore_native(
        &mut self,
        range: KeyGroupRange,
        native: &NativeSnapshot,
        seen: &mut BTreeSet<u32>,
        batch: &mut WriteBatch,
    ) -> StateResult<()> {
        let (from, to) = (range.start.max(self.range.start), range.end.min(self.range.end));
        if from >= to {
            return Ok(());
        }
        for key_group in from..to {
            if !seen.insert(key_group) {
                return Err(StateError::DuplicateKeyGroup { key_group });
            }
        }
        let mut ids = Vec::with_capacity(native.state_names.len());
        for name in &native.state_names {
            let id = self.caches.iter().position(|cache| cache.name() == name);
            ids.push(id.ok_or_else(|| StateError::UnknownState { name: name.clone() })?);
        }
        let mut source = self.store.open_native(native)?;
        let (caches, max_parallelism) = (&self.caches, self.max_parallelism);
        let mut failure = None;
        let mut key = Vec::new();
        let mut copy = |bytes: &[u8], value: &[u8]| -> StateResult<()> {
            let corrupt = |message: String| StateError::NativeFiles { message };
            let entry = parse_key(bytes).map_err(|message| corrupt(format!("a malformed key: {message}")))?;
            let Some(&id) = ids.get(entry.state as usize) else {
                return Err(corrupt(format!("an entry of state {} beyond the snapshot's states", entry.state)));
            };
            if key_group_of(&entry.key, max_parallelism) != entry.key_group {
                return Err(corrupt(format!("key {} filed under key group {}", entry.key, entry.key_group)));
            }
            caches[id].check(value).map_err(|error| corrupt(error.to_string()))?;
            key_prefix(entry.key_group, &entry.key, &mut key)?;
            push_state_and_namespace(id as u32, entry.namespace, &mut key);
            batch.push((key.clone(), Some(value.to_vec())));
            Ok(())
        };
        let scanned =
            source.scan(&group_start(from), &group_end(to - 1), &mut |bytes, value| match copy(bytes, value) {
                Ok(()) => true,
                Err(error) => {
                    failure = Some(error);
                    false
                }
            });
        scanned.map_err(|message| StateError::NativeFiles { message })?;
        failure.map_or(Ok(()), Err)
    }
}

/// The key after every key that starts with `prefix` (past every key when there is none).
fn range_end(prefix: &[u8]) -> Vec<u8> {
    prefix_end(prefix).unwrap_or_else(|| vec![0xff; prefix.len() + 1])
}

impl KeyedStateBackend for StoreKeyedStateBackend {
    fn max_parallelism(&self) -> u32 {
        self.max_parallelism
    }

    fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    fn set_current_key(&mut self, key: Value) -> StateResult<()> {
        let group = self.group_of(&key);
        if let Ok(key_group) = group {
            key_prefix(key_group, &key, &mut self.current.prefix)?;
        }
        self.current.group = group;
        self.current.key = key;
        Ok(())
    }

    fn current_key(&self) -> &Value {
        &self.current.key
    }

    fn current_key_group(&mut self) -> StateResult<u32> {
        self.current.group.clone()
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

    fn value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<&T>> {
        Ok(self.slot::<T>(state.id, at, false)?.and_then(|slot| slot.value.as_ref()))
    }

    fn value_mut<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<&mut T>> {
        let Some(slot) = self.slot::<T>(state.id, at, false)? else { return Ok(None) };
        slot.dirty |= slot.value.is_some();
        Ok(slot.value.as_mut())
    }

    fn entry<T: StateType>(&mut self, of: ValueState<T>, at: Namespace, f: impl FnOnce() -> T) -> StateResult<&mut T> {
        let Some(slot) = self.slot::<T>(of.id, at, true)? else { unreachable!("`create` refuses unowned keys") };
        slot.dirty = true;
        Ok(slot.value.get_or_insert_with(f))
    }

    fn set_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace, value: T) -> StateResult<Option<T>> {
        let Some(slot) = self.slot::<T>(state.id, at, true)? else { unreachable!("`create` refuses unowned keys") };
        slot.dirty = true;
        Ok(slot.value.replace(value))
    }

    fn take_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<T>> {
        let Some(slot) = self.slot::<T>(state.id, at, false)? else { return Ok(None) };
        let taken = slot.value.take();
        slot.dirty |= taken.is_some();
        Ok(taken)
    }

    fn namespaces<T: StateType>(&mut self, state: ValueState<T>, out: &mut Vec<Namespace>) -> StateResult<()> {
        out.clear();
        if self.current.group.is_err() {
            return Ok(());
        }
        // The store's namespaces, overlaid with the cache's (which may add or remove some).
        let mut found = BTreeSet::new();
        let prefix = self.current.prefix.clone();
        self.scan_range(&prefix, &range_end(&prefix), &mut |key, _| {
            if key.state == state.id {
                found.insert(key.namespace);
            }
            Ok(())
        })?;
        let cache = self.cache_ref::<T>(state.id);
        let mut own = prefix;
        own.extend_from_slice(&(state.id as u16).to_be_bytes());
        for (key, slot) in cache.slots.range(own.clone()..range_end(&own)) {
            let namespace = parse_key(key).map_err(Self::store_error)?.namespace;
            if slot.value.is_some() {
                found.insert(namespace);
            } else {
                found.remove(&namespace);
            }
        }
        out.extend(found);
        Ok(())
    }

    fn for_each_value<T: StateType>(
        &mut self,
        state: ValueState<T>,
        visit: &mut dyn FnMut(&Value, Namespace, &T),
    ) -> StateResult<()> {
        let mut entries = Vec::new();
        self.scan(&mut |key, value| {
            if key.state == state.id {
                entries.push((key.key_group, key.key, key.namespace, value.to_vec()));
            }
            Ok(())
        })?;
        entries.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        let cache = self.cache_ref::<T>(state.id);
        for (_, key, namespace, bytes) in entries {
            let value = cache.codec.decode(&bytes)?;
            visit(&key, namespace, &value);
        }
        Ok(())
    }

    fn list_add<T: StateType>(&mut self, state: ListState<T>, at: Namespace, item: T) -> StateResult<()> {
        let Some(slot) = self.slot::<Vec<T>>(state.id, at, true)? else {
            unreachable!("`create` refuses unowned keys")
        };
        slot.dirty = true;
        slot.value.get_or_insert_with(Vec::new).push(item);
        Ok(())
    }

    fn list<T: StateType>(&mut self, state: ListState<T>, at: Namespace) -> StateResult<&[T]> {
        let slot = self.slot::<Vec<T>>(state.id, at, false)?;
        Ok(slot.and_then(|slot| slot.value.as_deref()).unwrap_or(&[]))
    }

    fn list_take<T: StateType>(&mut self, state: ListState<T>, at: Namespace) -> StateResult<Vec<T>> {
        let Some(slot) = self.slot::<Vec<T>>(state.id, at, false)? else { return Ok(Vec::new()) };
        let taken = slot.value.take();
        slot.dirty |= taken.is_some();
        Ok(taken.unwrap_or_default())
    }

    fn map_put<K: StateKey, V: StateType>(&mut self, of: MapState<K, V>, at: Namespace, kv: (K, V)) -> StateResult<()> {
        let slot = self.slot::<BTreeMap<K, V>>(of.id, at, true)?;
        let Some(slot) = slot else { unreachable!("`create` refuses unowned keys") };
        slot.dirty = true;
        slot.value.get_or_insert_with(BTreeMap::new).insert(kv.0, kv.1);
        Ok(())
    }

    fn map_remove<K: StateKey, V: StateType>(
        &mut self,
        state: MapState<K, V>,
        at: Namespace,
        key: &K,
    ) -> StateResult<Option<V>> {
        let Some(slot) = self.slot::<BTreeMap<K, V>>(state.id, at, false)? else { return Ok(None) };
        let Some(map) = slot.value.as_mut() else { return Ok(None) };
        let removed = map.remove(key);
        if removed.is_some() {
            slot.dirty = true;
            if map.is_empty() {
                slot.value = None;
            }
        }
        Ok(removed)
    }

    fn map<K: StateKey, V: StateType>(
        &mut self,
        state: MapState<K, V>,
        at: Namespace,
    ) -> StateResult<Option<&BTreeMap<K, V>>> {
        Ok(self.slot::<BTreeMap<K, V>>(state.id, at, false)?.and_then(|slot| slot.value.as_ref()))
    }

    fn reducing_add<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace, value: T) -> StateResult<()> {
        let Some(reduce) = self.cache::<T>(state.id).reduce.take() else {
            unreachable!("a reducing state handle always names a state with a reduce function");
        };
        let result = match self.slot::<T>(state.id, at, true) {
            Ok(Some(slot)) => {
                slot.dirty = true;
                match slot.value.as_mut() {
                    Some(reduced) => reduce(reduced, value),
                    None => {
                        slot.value = Some(value);
                        Ok(())
                    }
                }
            }
            Ok(None) => unreachable!("`create` refuses unowned keys"),
            Err(error) => Err(error),
        };
        self.cache::<T>(state.id).reduce = Some(reduce);
        result
    }

    fn reducing_get<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace) -> StateResult<Option<&T>> {
        Ok(self.slot::<T>(state.id, at, false)?.and_then(|slot| slot.value.as_ref()))
    }

    fn reducing_take<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace) -> StateResult<Option<T>> {
        let Some(slot) = self.slot::<T>(state.id, at, false)? else { return Ok(None) };
        let taken = slot.value.take();
        slot.dirty |= taken.is_some();
        Ok(taken)
    }

    fn entry_count(&mut self) -> StateResult<usize> {
        let mut count = 0;
        self.scan(&mut |_, _| {
            count += 1;
            Ok(())
        })?;
        Ok(count)
    }

    fn snapshot(&mut self) -> StateResult<KeyedSnapshot> {
        let names: Vec<String> = self.caches.iter().map(|cache| cache.name().to_string()).collect();
        if self.native_snapshots {
            self.write_back(false)?;
            if let Some(mut native) = self.store.native_checkpoint()? {
                native.state_names = names;
                let (max_parallelism, key_group_range) = (self.max_parallelism, self.range);
                return Ok(KeyedSnapshot {
                    max_parallelism,
                    key_group_range,
                    groups: Vec::new(),
                    native: Some(native),
                });
            }
        }
        let mut groups = Vec::new();
        for (key_group, per_state) in self.group_images()? {
            let states: Vec<StateImage> = per_state
                .into_iter()
                .zip(&names)
                .filter(|(entries, _)| !entries.is_empty())
                .map(|(entries, name)| StateImage { name: name.clone(), entries })
                .collect();
            let bytes = encode_to_vec(&GroupImage { states }).map_err(|message| StateError::Codec { message })?;
            groups.push(KeyGroupSnapshot { key_group, bytes });
        }
        Ok(KeyedSnapshot { max_parallelism: self.max_parallelism, key_group_range: self.range, groups, native: None })
    }

    fn set_native_snapshots(&mut self, native: bool) {
        self.native_snapshots = native;
    }

    fn restore(&mut self, snapshots: &[&KeyedSnapshot]) -> StateResult<()> {
        let entries = self.entry_count()?;
        if entries > 0 {
            return Err(StateError::NotEmpty { entries });
        }
        if let Some(native) = self.adoptable(snapshots) {
            // Same key groups and state ids: the files become this store as they are.
            return Ok(self.store.adopt_native(native)?);
        }
        let (mut seen, range) = (BTreeSet::new(), self.range);
        let mut batch = WriteBatch::new();
        for snapshot in snapshots {
            if snapshot.max_parallelism != self.max_parallelism {
                let found = snapshot.max_parallelism;
                return Err(StateError::MaxParallelismMismatch { expected: self.max_parallelism, found });
            }
            if let Some(native) = &snapshot.native {
                self.restore_native(snapshot.key_group_range, native, &mut seen, &mut batch)?;
                continue;
            }
            for group in snapshot.groups.iter().filter(|group| range.contains(group.key_group)) {
                if !seen.insert(group.key_group) {
                    return Err(StateError::DuplicateKeyGroup { key_group: group.key_group });
                }
                self.restore_group(group.key_group, &group.bytes, &mut batch)?;
            }
        }
        // One batch: a restore that fails part-way leaves the store empty, as it found it.
        if !batch.is_empty() {
            self.store.write(&batch).map_err(Self::store_error)?;
        }
        Ok(())
    }
}
