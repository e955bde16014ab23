//! One state of the heap backend: its values per key and namespace, found by the key's hash.
//!
//! Entries live in a slab; an open-addressing index (linear probing, at most half full, a
//! power of two long) finds a key's entry from its probe hash ([`probe_hash`]: an int key is
//! its own probe, anything else its stable hash). The key group (the stable hash, which costs
//! more than the rest of a lookup) is computed only when an entry is created, and kept in it.
//! The index only answers lookups: nothing iterates it. Whatever iterates (snapshots, restores
//! rebuilding timers) goes through [`Table::sorted`], ordered by key group, then key, then
//! namespace, so no hash order ever leaks.

use super::{Namespace, ReduceFn, StateCodec, StateResult};
use crate::expr::stable_hash;
use crate::row::Value;

/// A key's values, sorted by namespace, never empty while in a table. A single value (one
/// namespace, the usual case) sits in the entry itself: one pointer less to chase per record.
pub(super) enum Namespaced<T> {
    One((Namespace, T)),
    Many(Vec<(Namespace, T)>),
}

impl<T> Namespaced<T> {
    pub(super) fn entries(&self) -> &[(Namespace, T)] {
        match self {
            Namespaced::One(entry) => std::slice::from_ref(entry),
            Namespaced::Many(entries) => entries,
        }
    }

    fn entries_mut(&mut self) -> &mut [(Namespace, T)] {
        match self {
            Namespaced::One(entry) => std::slice::from_mut(entry),
            Namespaced::Many(entries) => entries,
        }
    }

    #[inline(always)]
    fn position(&self, at: Namespace) -> Result<usize, usize> {
        match self.entries() {
            [(only, _)] if *only == at => Ok(0),
            entries => entries.binary_search_by(|(namespace, _)| namespace.cmp(&at)),
        }
    }

    fn get(&self, at: Namespace) -> Option<&T> {
        self.position(at).ok().map(|index| &self.entries()[index].1)
    }

    #[inline]
    fn get_mut(&mut self, at: Namespace) -> Option<&mut T> {
        self.position(at).ok().map(|index| &mut self.entries_mut()[index].1)
    }

    /// Inserts a value for a namespace that is not there, at `index` (from `position`).
    fn insert_at(&mut self, index: usize, at: Namespace, value: T) {
        let mut entries = match std::mem::replace(self, Namespaced::Many(Vec::new())) {
            Namespaced::One(entry) => vec![entry],
            Namespaced::Many(entries) => entries,
        };
        entries.insert(index, (at, value));
        *self = Namespaced::Many(entries);
    }

    #[inline]
    fn get_or_insert_with(&mut self, at: Namespace, init: impl FnOnce() -> T) -> &mut T {
        let index = match self.position(at) {
            Ok(index) => index,
            Err(index) => {
                self.insert_at(index, at, init());
                index
            }
        };
        &mut self.entries_mut()[index].1
    }

    fn insert(&mut self, at: Namespace, value: T) -> Option<T> {
        match self.position(at) {
            Ok(index) => Some(std::mem::replace(&mut self.entries_mut()[index].1, value)),
            Err(index) => {
                self.insert_at(index, at, value);
                None
            }
        }
    }

    /// Removes the value at `at`; the table drops an entry left empty.
    fn remove(&mut self, at: Namespace) -> Option<T> {
        let index = self.position(at).ok()?;
        match std::mem::replace(self, Namespaced::Many(Vec::new())) {
            Namespaced::One((_, value)) => Some(value),
            Namespaced::Many(mut entries) => {
                let (_, value) = entries.remove(index);
                *self = match entries.len() {
                    1 => Namespaced::One(entries.remove(0)),
                    _ => Namespaced::Many(entries),
                };
                Some(value)
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
}

/// A key with everything the table knows of it.
pub(super) struct Entry<T> {
    probe: u64,
    pub(super) key_group: u32,
    pub(super) key: Value,
    pub(super) values: Namespaced<T>,
}

/// The hash a table finds a key by.
#[inline]
pub(super) fn probe_hash(key: &Value) -> u64 {
    match key {
        Value::Int(x) => *x as u64,
        other => stable_hash(other),
    }
}

/// A key to look up, with its probe hash.
#[derive(Clone, Copy)]
pub(super) struct Probe<'a> {
    pub(super) hash: u64,
    pub(super) key: &'a Value,
}

/// An empty index slot.
const EMPTY: u32 = u32::MAX;
/// Smallest index allocated.
const INDEX_SLOTS_MIN: usize = 16;

/// Equality of keys with ints compared inline (this runs for every record).
#[inline]
fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => a == b,
    }
}

/// One registered state.
pub(super) struct Table<T> {
    pub(super) name: String,
    pub(super) codec: Box<dyn StateCodec<T>>,
    pub(super) reduce: Option<ReduceFn<T>>,
    entries: Vec<Entry<T>>,
    index: Vec<u32>,
}

impl<T> Table<T> {
    pub(super) fn new(name: &str, codec: Box<dyn StateCodec<T>>, reduce: Option<ReduceFn<T>>) -> Table<T> {
        Table { name: name.to_string(), codec, reduce, entries: Vec::new(), index: Vec::new() }
    }

    /// The index slot where a probe for `hash` starts (Fibonacci hashing: the high bits of the
    /// product, so that consecutive ints and stable hashes of one key group spread alike).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        let bits = self.index.len().trailing_zeros();
        (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
    }

    /// The slab position of `key`'s entry.
    #[inline(always)]
    fn find(&self, hash: u64, key: &Value) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut slot = self.home(hash);
        loop {
            let position = self.index[slot];
            if position == EMPTY {
                return None;
            }
            let entry = &self.entries[position as usize];
            if entry.probe == hash && same_key(&entry.key, key) {
                return Some(position as usize);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The index slot that holds slab position `position`.
    fn slot_of(&self, position: usize) -> usize {
        let mask = self.index.len() - 1;
        let mut slot = self.home(self.entries[position].probe);
        while self.index[slot] != position as u32 {
            slot = (slot + 1) & mask;
        }
        slot
    }

    fn place(&mut self, position: usize) {
        let mask = self.index.len() - 1;
        let mut slot = self.home(self.entries[position].probe);
        while self.index[slot] != EMPTY {
            slot = (slot + 1) & mask;
        }
        self.index[slot] = position as u32;
    }

    /// Adds an entry for a key that has none; returns its slab position.
    fn add(&mut self, probe: Probe<'_>, key_group: u32, values: Namespaced<T>) -> usize {
        if (self.entries.len() + 1) * 2 > self.index.len() {
            self.index = vec![EMPTY; (self.index.len() * 2).max(INDEX_SLOTS_MIN)];
            for position in 0..self.entries.len() {
                self.place(position);
            }
        }
        assert!(self.entries.len() < EMPTY as usize, "a state holds at most {} keys", EMPTY - 1);
        self.entries.push(Entry { probe: probe.hash, key_group, key: probe.key.clone(), values });
        let position = self.entries.len() - 1;
        self.place(position);
        position
    }

    /// Drops the entry at slab position `position` (backward-shift deletion, then the last entry
    /// moves into the freed place).
    fn drop_entry(&mut self, position: usize) {
        let mask = self.index.len() - 1;
        let mut hole = self.slot_of(position);
        let mut next = (hole + 1) & mask;
        while self.index[next] != EMPTY {
            let home = self.home(self.entries[self.index[next] as usize].probe);
            let stays = if hole <= next { hole < home && home <= next } else { hole < home || home <= next };
            if !stays {
                self.index[hole] = self.index[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.index[hole] = EMPTY;
        let last = self.entries.len() - 1;
        if position != last {
            let slot = self.slot_of(last);
            self.index[slot] = position as u32;
        }
        self.entries.swap_remove(position);
    }

    pub(super) fn get(&self, probe: Probe<'_>, at: Namespace) -> Option<&T> {
        let position = self.find(probe.hash, probe.key)?;
        self.entries[position].values.get(at)
    }

    #[inline]
    pub(super) fn get_mut(&mut self, probe: Probe<'_>, at: Namespace) -> Option<&mut T> {
        let position = self.find(probe.hash, probe.key)?;
        self.entries[position].values.get_mut(at)
    }

    /// The value, created by `init` when absent; `key_group` is asked only for a new key.
    #[inline]
    pub(super) fn get_or_insert_with(
        &mut self,
        probe: Probe<'_>,
        at: Namespace,
        key_group: impl FnOnce() -> StateResult<u32>,
        init: impl FnOnce() -> T,
    ) -> StateResult<&mut T> {
        match self.find(probe.hash, probe.key) {
            Some(position) => Ok(self.entries[position].values.get_or_insert_with(at, init)),
            None => {
                let position = self.add(probe, key_group()?, Namespaced::One((at, init())));
                let Namespaced::One((_, value)) = &mut self.entries[position].values else {
                    unreachable!("a new entry holds one value");
                };
                Ok(value)
            }
        }
    }

    /// The slab position of the key's entry, created with `init` at `at` when the key has none
    /// (`key_group` is asked only then). Positions stay valid until an entry is removed.
    #[inline]
    pub(super) fn locate(
        &mut self,
        probe: Probe<'_>,
        at: Namespace,
        key_group: impl FnOnce() -> StateResult<u32>,
        init: impl FnOnce() -> T,
    ) -> StateResult<usize> {
        match self.find(probe.hash, probe.key) {
            Some(position) => Ok(position),
            None => Ok(self.add(probe, key_group()?, Namespaced::One((at, init())))),
        }
    }

    /// The value at `at` of the entry at slab position `position` (from [`Table::locate`]),
    /// created by `init` when absent.
    #[inline]
    pub(super) fn value_at(&mut self, position: usize, at: Namespace, init: impl FnOnce() -> T) -> &mut T {
        self.entries[position].values.get_or_insert_with(at, init)
    }

    /// Sets the value; `key_group` is asked only for a new key.
    pub(super) fn insert(
        &mut self,
        probe: Probe<'_>,
        at: Namespace,
        key_group: impl FnOnce() -> StateResult<u32>,
        value: T,
    ) -> StateResult<Option<T>> {
        match self.find(probe.hash, probe.key) {
            Some(position) => Ok(self.entries[position].values.insert(at, value)),
            None => {
                self.add(probe, key_group()?, Namespaced::One((at, value)));
                Ok(None)
            }
        }
    }

    pub(super) fn remove(&mut self, probe: Probe<'_>, at: Namespace) -> Option<T> {
        let position = self.find(probe.hash, probe.key)?;
        let removed = self.entries[position].values.remove(at);
        if self.entries[position].values.is_empty() {
            self.drop_entry(position);
        }
        removed
    }

    /// The key's namespaces, ascending.
    pub(super) fn namespaces(&self, probe: Probe<'_>) -> impl Iterator<Item = Namespace> + '_ {
        let found = self.find(probe.hash, probe.key).map(|position| self.entries[position].values.entries());
        found.unwrap_or(&[]).iter().map(|(namespace, _)| *namespace)
    }

    /// Values over all keys and namespaces.
    pub(super) fn len(&self) -> usize {
        self.entries.iter().map(|entry| entry.values.entries().len()).sum()
    }

    /// The entries ordered by key group, then key.
    pub(super) fn sorted(&self) -> Vec<&Entry<T>> {
        let mut sorted: Vec<&Entry<T>> = self.entries.iter().collect();
        sorted.sort_by(|a, b| a.key_group.cmp(&b.key_group).then_with(|| a.key.cmp(&b.key)));
        sorted
    }

    /// Checks the index against the slab: every entry found from its hash, at its place.
    #[cfg(test)]
    pub(super) fn check_index(&self) {
        for (position, entry) in self.entries.iter().enumerate() {
            assert_eq!(self.find(entry.probe, &entry.key), Some(position), "entry {position} is lost");
        }
        let used = self.index.iter().filter(|&&slot| slot != EMPTY).count();
        assert_eq!(used, self.entries.len(), "index and slab disagree");
    }
}
