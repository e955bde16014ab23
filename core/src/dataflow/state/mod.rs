//! Keyed state: value, list, map and reducing state per key and namespace, snapshotted per key
//! group so that a job restored at another parallelism redistributes it.
//!
//! This module owns the keyed-state interface ([`KeyedStateBackend`]), the heap backend
//! ([`HeapKeyedStateBackend`], the default), the store backend ([`StoreKeyedStateBackend`]:
//! state as bytes in a [`StateStore`] such as RocksDB), key groups ([`KeyGroupRange`]) and the snapshot
//! format ([`KeyedSnapshot`]). State is addressed by a typed handle (one per registered state,
//! [`ValueState`], [`ListState`], [`MapState`], [`ReducingState`]), the backend's current key
//! ([`KeyedStateBackend::set_current_key`], as Flink's `setCurrentKey`) and a [`Namespace`]
//! (a window, or [`Namespace::Global`]).
//!
//! Key groups follow Flink: a key's group is `stable_hash(key) mod max_parallelism`, and
//! subtask `i` of `p` owns the groups `[ceil(i·m/p), ceil((i+1)·m/p))` of `m`
//! (`KeyGroupRangeAssignment`). A composite key is hashed as the `Value::List` of its parts.
//!
//! Invariants the backend keeps and checks:
//! - every entry lives in the key group of its key, and that group lies in the backend's range
//!   (storing state for a key outside the range is refused);
//! - a snapshot lists its key groups in ascending order, each once, only those holding state,
//!   each as its own byte string, so a restore decodes only the groups it owns;
//! - a restore takes exactly the groups of the new range from whichever snapshots hold them and
//!   refuses a group offered twice, a different max parallelism, an unregistered state name,
//!   a key filed under the wrong group and undecodable bytes (typed errors, never panics).
//!
//! Snapshot iteration is ordered (key group, then state registration order, then key and
//! namespace), so the same state always gives the same bytes.

mod heap;
mod image;
mod native;
mod store;
mod store_backend;
mod table;

pub use heap::HeapKeyedStateBackend;
pub use native::{NativeSnapshot, PrivateFile, SharedFile};
pub use store::{MemoryStateStore, NativeError, StateStore, WriteBatch};
pub use store_backend::StoreKeyedStateBackend;

use super::EventTime;
use crate::ids::SubtaskIndex;
use crate::row::Value;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::Range;

/// Largest snapshot a decoder accepts for one value (guards allocations on corrupt input).
pub const DECODE_BYTES_MAX: usize = 1 << 30;

/// The key group of `key` among `max_parallelism` groups: the partitioner's formula, so a record
/// routed to a subtask always finds its key group in that subtask's range.
pub(crate) fn key_group_of(key: &Value, max_parallelism: u32) -> u32 {
    crate::dataflow::partition::key_group_of(key, max_parallelism)
}

/// A half-open range `[start, end)` of key groups: the groups one subtask owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupRange {
    /// The first key group.
    pub start: u32,
    /// One past the last key group.
    pub end: u32,
}

impl KeyGroupRange {
    /// The range `[start, end)`.
    pub fn new(start: u32, end: u32) -> KeyGroupRange {
        assert!(start <= end, "key group range {start}..{end} is reversed");
        KeyGroupRange { start, end }
    }

    /// The groups subtask `subtask` of `parallelism` owns among `max_parallelism` groups
    /// (Flink's `computeKeyGroupRangeForOperatorIndex`).
    pub fn for_subtask(max_parallelism: u32, parallelism: u32, subtask: SubtaskIndex) -> KeyGroupRange {
        assert!(parallelism > 0 && parallelism <= max_parallelism, "parallelism {parallelism} of {max_parallelism}");
        assert!(subtask.0 < parallelism, "subtask {subtask} of {parallelism}");
        let (max, parallelism, index) = (max_parallelism as u64, parallelism as u64, subtask.0 as u64);
        let start = (index * max).div_ceil(parallelism);
        let end = ((index + 1) * max).div_ceil(parallelism);
        KeyGroupRange::new(start as u32, end as u32)
    }

    /// Whether `key_group` is in the range.
    pub fn contains(&self, key_group: u32) -> bool {
        (self.start..self.end).contains(&key_group)
    }

    /// Number of key groups.
    pub fn len(&self) -> u32 {
        self.end - self.start
    }

    /// Whether the range holds no group.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The key groups in order.
    pub fn iter(&self) -> Range<u32> {
        self.start..self.end
    }
}

/// The subtask of `parallelism` that owns `key_group` (Flink's `computeOperatorIndexForKeyGroup`).
pub fn subtask_for_key_group(max_parallelism: u32, parallelism: u32, key_group: u32) -> SubtaskIndex {
    assert!(key_group < max_parallelism, "key group {key_group} of {max_parallelism}");
    SubtaskIndex((key_group as u64 * parallelism as u64 / max_parallelism as u64) as u32)
}

/// A time window `[start, end)` in milliseconds, as Flink's `TimeWindow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeWindow {
    /// First millisecond in the window.
    pub start: EventTime,
    /// First millisecond after the window.
    pub end: EventTime,
}

impl TimeWindow {
    /// The last timestamp that belongs to the window (`end - 1`).
    pub fn max_timestamp(&self) -> EventTime {
        self.end.saturating_sub(1)
    }

    /// Whether the two windows overlap or touch (Flink's `TimeWindow.intersects`).
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// What a piece of keyed state is scoped to besides its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Namespace {
    /// Not scoped: one value per key (count windows, running aggregations).
    Global,
    /// One value per key and time window.
    Window(TimeWindow),
}

/// A keyed-state failure: a refused restore, bytes that do not decode, a misuse of keys.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The snapshot was taken with another number of key groups.
    #[error("the snapshot has max parallelism {found} but the job has {expected}; key groups cannot be remapped")]
    MaxParallelismMismatch {
        /// This backend's max parallelism.
        expected: u32,
        /// The snapshot's.
        found: u32,
    },
    /// Two snapshots both claim a key group.
    #[error("key group {key_group} appears in more than one snapshot")]
    DuplicateKeyGroup {
        /// The group.
        key_group: u32,
    },
    /// A key group's bytes do not decode, or decode to something impossible.
    #[error("key group {key_group} of the snapshot is corrupt: {message}")]
    Corrupt {
        /// The group.
        key_group: u32,
        /// What was wrong.
        message: String,
    },
    /// The snapshot holds a state the operator did not register.
    #[error("the snapshot holds state `{name}`, which the operator does not register")]
    UnknownState {
        /// The state's name.
        name: String,
    },
    /// A restore into a backend that already holds state.
    #[error("restore into a backend that already holds {entries} entries")]
    NotEmpty {
        /// Entries held.
        entries: usize,
    },
    /// The current key belongs to a key group this subtask does not own.
    #[error("key {key} is in key group {key_group}, outside this subtask's groups {range:?}")]
    KeyOutOfRange {
        /// The key, printed.
        key: String,
        /// Its group.
        key_group: u32,
        /// The groups owned.
        range: KeyGroupRange,
    },
    /// A value could not be encoded or decoded by its codec.
    #[error("state value codec: {message}")]
    Codec {
        /// What failed.
        message: String,
    },
    /// The files of a store checkpoint are missing or corrupt: the checkpoint is unreadable.
    #[error("the checkpoint's state files are unreadable: {message}")]
    NativeFiles {
        /// What is missing or wrong.
        message: String,
    },
    /// The store holding the state failed (an IO error, a corrupt block).
    #[error("state store: {message}")]
    Store {
        /// The store's error.
        message: String,
    },
    /// A reducing state's reduce function failed.
    #[error("reducing state `{name}`: {message}")]
    Reduce {
        /// The state.
        name: String,
        /// The function's error.
        message: String,
    },
}

/// Turns values of one state into bytes and back (Flink's `TypeSerializer`).
pub trait StateCodec<T>: Send + 'static {
    /// Appends the encoding of `value` to `out`.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), StateError>;
    /// Decodes one value from exactly `bytes`.
    fn decode(&self, bytes: &[u8]) -> Result<T, StateError>;
}

/// The codec of any serde type: bincode's standard encoding.
#[derive(Clone, Copy, Debug, Default)]
pub struct SerdeCodec;

impl<T: Serialize + DeserializeOwned> StateCodec<T> for SerdeCodec {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), StateError> {
        encode_into(value, out).map_err(|message| StateError::Codec { message })
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, StateError> {
        decode_exact(bytes).map_err(|message| StateError::Codec { message })
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_BYTES_MAX>()
}

/// Appends bincode's standard encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    let bytes = bincode::serde::encode_to_vec(value, bincode_config()).map_err(|error| error.to_string())?;
    out.extend_from_slice(&bytes);
    Ok(())
}

/// Bincode's standard encoding of `value`.
pub(crate) fn encode_to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, bincode_config()).map_err(|error| error.to_string())
}

/// Decodes one value that must span all of `bytes`.
pub(crate) fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used): (T, usize) =
        bincode::serde::decode_from_slice(bytes, bincode_config()).map_err(|error| error.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes after the value", bytes.len() - used));
    }
    Ok(value)
}

macro_rules! state_handle {
    ($(#[$doc:meta])* $name:ident<$($param:ident),+>) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name<$($param),+> {
            id: u32,
            marker: PhantomData<fn() -> ($($param,)+)>,
        }

        impl<$($param),+> Clone for $name<$($param),+> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<$($param),+> Copy for $name<$($param),+> {}

        impl<$($param),+> $name<$($param),+> {
            fn new(id: u32) -> Self {
                $name { id, marker: PhantomData }
            }

            /// The state's position in its backend's registration order.
            pub fn id(&self) -> u32 {
                self.id
            }
        }
    };
}

state_handle!(
    /// A registered value state: one `T` per key and namespace.
    ValueState<T>
);
state_handle!(
    /// A registered list state: a list of `T` per key and namespace.
    ListState<T>
);
state_handle!(
    /// A registered map state: a map from `K` to `V` per key and namespace.
    MapState<K, V>
);
state_handle!(
    /// A registered reducing state: one `T` per key and namespace, folded by a reduce function.
    ReducingState<T>
);

/// The function of a reducing state: folds a new value into the current one.
pub type ReduceFn<T> = Box<dyn Fn(&mut T, T) -> StateResult<()> + Send>;

/// The result of a keyed-state operation.
pub type StateResult<T> = Result<T, StateError>;

/// What keyed state can hold: owned values that may move to the task's thread.
pub trait StateType: Send + 'static {}

impl<T: Send + 'static> StateType for T {}

/// What keys a map state.
pub trait StateKey: Ord + Send + 'static {}

impl<T: Ord + Send + 'static> StateKey for T {}

/// The codecs of a map state: one for its keys, one for its values.
pub struct MapCodecs<K, V> {
    /// Encodes the map's keys.
    pub keys: Box<dyn StateCodec<K>>,
    /// Encodes the map's values.
    pub values: Box<dyn StateCodec<V>>,
}

/// A reducing state's codec and function.
pub struct Reducer<T> {
    /// Encodes the reduced value.
    pub codec: Box<dyn StateCodec<T>>,
    /// Folds a new value into the current one.
    pub reduce: ReduceFn<T>,
}

/// Keyed state as operators see it. Accesses go to the current key (set per record) and the
/// namespace `at`; a missing entry reads as `None` or empty.
pub trait KeyedStateBackend {
    /// Number of key groups of the job.
    fn max_parallelism(&self) -> u32;
    /// The key groups this backend owns.
    fn key_group_range(&self) -> KeyGroupRange;
    /// Makes `key` the current key. A key whose group is not owned here is refused, by this call
    /// or by the first access that would store state for it (reads find nothing).
    fn set_current_key(&mut self, key: Value) -> StateResult<()>;
    /// The current key (`Value::Null` before the first `set_current_key`).
    fn current_key(&self) -> &Value;
    /// The current key's group; refused when it is not owned here.
    fn current_key_group(&mut self) -> StateResult<u32>;

    /// Registers a value state called `name` (names are unique per backend: a repeat is a bug).
    fn register_value<T: StateType>(&mut self, name: &str, codec: impl StateCodec<T>) -> ValueState<T>;
    /// Registers a list state called `name`; `codec` encodes one item.
    fn register_list<T: StateType>(&mut self, name: &str, codec: impl StateCodec<T>) -> ListState<T>;
    /// Registers a map state called `name`.
    fn register_map<K: StateKey, V: StateType>(&mut self, name: &str, codecs: MapCodecs<K, V>) -> MapState<K, V>;
    /// Registers a reducing state called `name`.
    fn register_reducing<T: StateType>(&mut self, name: &str, reducer: Reducer<T>) -> ReducingState<T>;

    /// The value of the current key at `at`.
    fn value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<&T>>;
    /// The value of the current key at `at`, to change in place.
    fn value_mut<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<&mut T>>;
    /// The value of `of` at `at`, created by `f` when absent.
    fn entry<T: StateType>(&mut self, of: ValueState<T>, at: Namespace, f: impl FnOnce() -> T) -> StateResult<&mut T>;
    /// Sets the value; returns the previous one.
    fn set_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace, value: T) -> StateResult<Option<T>>;
    /// Removes the value and returns it.
    fn take_value<T: StateType>(&mut self, state: ValueState<T>, at: Namespace) -> StateResult<Option<T>>;
    /// The namespaces holding a value for the current key, ascending, into `out` (cleared first).
    fn namespaces<T: StateType>(&mut self, state: ValueState<T>, out: &mut Vec<Namespace>) -> StateResult<()>;
    /// Every `(key, namespace, value)` of `state` in this backend, by key group, key, namespace.
    fn for_each_value<T: StateType>(
        &mut self,
        state: ValueState<T>,
        visit: &mut dyn FnMut(&Value, Namespace, &T),
    ) -> StateResult<()>;

    /// Appends `item` to the list.
    fn list_add<T: StateType>(&mut self, state: ListState<T>, at: Namespace, item: T) -> StateResult<()>;
    /// The list (empty when absent).
    fn list<T: StateType>(&mut self, state: ListState<T>, at: Namespace) -> StateResult<&[T]>;
    /// Removes the list and returns it.
    fn list_take<T: StateType>(&mut self, state: ListState<T>, at: Namespace) -> StateResult<Vec<T>>;

    /// Puts `kv` (a key and its value) into the map `of` at `at`.
    fn map_put<K: StateKey, V: StateType>(&mut self, of: MapState<K, V>, at: Namespace, kv: (K, V)) -> StateResult<()>;
    /// The map's value for `key`.
    fn map_get<K: StateKey, V: StateType>(
        &mut self,
        state: MapState<K, V>,
        at: Namespace,
        key: &K,
    ) -> StateResult<Option<&V>> {
        Ok(self.map(state, at)?.and_then(|map| map.get(key)))
    }
    /// Removes `key` from the map; an emptied map is dropped.
    fn map_remove<K: StateKey, V: StateType>(
        &mut self,
        state: MapState<K, V>,
        at: Namespace,
        key: &K,
    ) -> StateResult<Option<V>>;
    /// The whole map, ordered by key.
    fn map<K: StateKey, V: StateType>(
        &mut self,
        state: MapState<K, V>,
        at: Namespace,
    ) -> StateResult<Option<&BTreeMap<K, V>>>;

    /// Folds `value` into the reducing state (stores it when absent).
    fn reducing_add<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace, value: T) -> StateResult<()>;
    /// The reduced value.
    fn reducing_get<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace) -> StateResult<Option<&T>>;
    /// Removes the reduced value and returns it.
    fn reducing_take<T: StateType>(&mut self, state: ReducingState<T>, at: Namespace) -> StateResult<Option<T>>;

    /// Entries over all states, keys and namespaces.
    fn entry_count(&mut self) -> StateResult<usize>;
    /// The state of every owned key group that holds any, each group as its own bytes.
    fn snapshot(&mut self) -> StateResult<KeyedSnapshot>;
    /// Takes the key groups of this backend's range from `snapshots` (an empty backend only).
    fn restore(&mut self, snapshots: &[&KeyedSnapshot]) -> StateResult<()>;
    /// Whether the next snapshots may be in the store's own format (checkpoints, when the store
    /// has one) or must be canonical (savepoints). Backends without a store ignore it.
    fn set_native_snapshots(&mut self, native: bool) {
        let _ = native;
    }

    /// The value of `state` at `at` for each key of `keys` in turn, created by `init` when
    /// absent, handed to `visit` with its key: `set_current_key` and `entry` key by key (a
    /// backend may batch the lookups). The last key visited is current afterwards.
    ///
    /// A key outside this subtask's key groups ends the batch: the keys before it are visited,
    /// then its error, through `fail`, is returned. `visit` failing stops the batch with that
    /// error.
    fn for_each_entry<T: StateType, E>(
        &mut self,
        (state, at): (ValueState<T>, Namespace),
        keys: &[Value],
        mut init: impl FnMut() -> T,
        mut visit: impl FnMut(&Value, &mut T) -> Result<(), E>,
        fail: impl Fn(StateError) -> E,
    ) -> Result<(), E> {
        for key in keys {
            self.set_current_key(key.clone()).map_err(&fail)?;
            let value = self.entry(state, at, &mut init).map_err(&fail)?;
            visit(key, value)?;
        }
        Ok(())
    }
}

/// Keyed state of one subtask, per key group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedSnapshot {
    /// Number of key groups of the job when it was taken.
    pub max_parallelism: u32,
    /// The groups the subtask owned.
    pub key_group_range: KeyGroupRange,
    /// Groups holding state, ascending, each once (empty when `native` holds the state).
    pub groups: Vec<KeyGroupSnapshot>,
    /// The store's own files instead of `groups` (an incremental checkpoint), if so.
    pub native: Option<NativeSnapshot>,
}

/// One key group's state, encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGroupSnapshot {
    /// The key group.
    pub key_group: u32,
    /// Its entries, encoded by the backend that took the snapshot.
    pub bytes: Vec<u8>,
}

impl KeyedSnapshot {
    /// Total encoded bytes.
    pub fn byte_size(&self) -> usize {
        self.groups.iter().map(|group| group.bytes.len()).sum()
    }
}

#[cfg(test)]
mod tests;
