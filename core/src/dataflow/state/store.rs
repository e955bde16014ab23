//! Keyed state kept as bytes in a sorted key-value store: the [`StateStore`] interface the
//! drivers implement (RocksDB in the daemons), the in-memory [`MemoryStateStore`] the simulator
//! and the tests use, and the layout of keys in the store.
//!
//! Layout (Flink's RocksDB backend puts the key group first too, so that one key group is one
//! contiguous range, which rescaling and snapshots read whole):
//!
//! ```text
//! key group (u32 BE) | key length (u32 BE) | key (bincode of Value) | state id (u16 BE) | namespace
//! namespace: 0x00 (global) | 0x01, window start, window end (i64, sign bit flipped, BE)
//! ```
//!
//! The length before the key makes the first four parts a prefix no other key extends, so the
//! states and namespaces of one key are one range; the namespace encoding sorts as
//! [`Namespace`] does. Values are the bytes of the state's codec, the same bytes the heap
//! backend's snapshots hold, so the two backends' snapshots are interchangeable.

use super::{Namespace, NativeSnapshot, StateError, StateResult, TimeWindow, decode_exact, encode_into};
use crate::row::Value;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Puts (`Some`) and deletes (`None`) applied together by [`StateStore::write`].
pub type WriteBatch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A sorted byte store holding one operator instance's keyed state. Errors are the store's own
/// (an IO error, a corrupt block), returned as text.
pub trait StateStore: Send {
    /// The value under `key`.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    /// Applies every put and delete of `batch`, atomically.
    fn write(&mut self, batch: &WriteBatch) -> Result<(), String>;
    /// Visits the entries with keys in `[from, to)` in key order while `visit` returns `true`.
    fn scan(&mut self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), String>;

    /// A checkpoint in the store's own format (its files, new ones uploaded), or `None` when the
    /// store has none or is not configured for it; the caller then takes a canonical snapshot.
    /// `state_names` of the result is left for the caller to fill.
    fn native_checkpoint(&mut self) -> Result<Option<NativeSnapshot>, NativeError> {
        Ok(None)
    }

    /// Replaces this (empty) store's contents with the files of `snapshot`.
    fn adopt_native(&mut self, snapshot: &NativeSnapshot) -> Result<(), NativeError> {
        let _ = snapshot;
        Err(NativeError::Unsupported)
    }

    /// The files of `snapshot` as a store of their own, to read entries from (a rescale).
    fn open_native(&mut self, snapshot: &NativeSnapshot) -> Result<Box<dyn StateStore>, NativeError> {
        let _ = snapshot;
        Err(NativeError::Unsupported)
    }
}

/// Why a store could not take or read a checkpoint in its own format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NativeError {
    /// The store has no format of its own.
    #[error("this state store cannot read incremental checkpoints")]
    Unsupported,
    /// A file of the checkpoint is missing or corrupt: the checkpoint cannot be restored.
    #[error("{0}")]
    Unreadable(String),
    /// The store itself failed (local IO).
    #[error("{0}")]
    Store(String),
}

impl From<NativeError> for StateError {
    fn from(error: NativeError) -> StateError {
        match error {
            NativeError::Unreadable(message) => StateError::NativeFiles { message },
            other => StateError::Store { message: other.to_string() },
        }
    }
}

/// A store in memory: the simulator's and the tests' stand-in for RocksDB.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> MemoryStateStore {
        MemoryStateStore::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl StateStore for MemoryStateStore {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(self.entries.get(key).cloned())
    }

    fn write(&mut self, batch: &WriteBatch) -> Result<(), String> {
        for (key, value) in batch {
            match value {
                Some(value) => self.entries.insert(key.clone(), value.clone()),
                None => self.entries.remove(key),
            };
        }
        Ok(())
    }

    fn scan(&mut self, from: &[u8], to: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), String> {
        let range = (Bound::Included(from), Bound::Excluded(to));
        for (key, value) in self.entries.range::<[u8], _>(range) {
            if !visit(key, value) {
                break;
            }
        }
        Ok(())
    }
}

const GLOBAL: u8 = 0;
const WINDOW: u8 = 1;
/// Bytes of a key group.
const GROUP_BYTES: usize = 4;

/// `i64` as bytes that sort as the numbers do.
fn ordered(number: i64) -> [u8; 8] {
    ((number as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The first key of key group `key_group`.
pub(super) fn group_start(key_group: u32) -> [u8; GROUP_BYTES] {
    key_group.to_be_bytes()
}

/// The end (exclusive) of key group `key_group`'s range: the start of the next group, or past
/// every key when it is the last possible group.
pub(super) fn group_end(key_group: u32) -> Vec<u8> {
    match key_group.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xff; GROUP_BYTES + 1],
    }
}

/// `[key group][length][key]`: the prefix every entry of one key shares.
pub(super) fn key_prefix(key_group: u32, key: &Value, out: &mut Vec<u8>) -> StateResult<()> {
    out.clear();
    out.extend_from_slice(&group_start(key_group));
    out.extend_from_slice(&[0; 4]);
    encode_into(key, out).map_err(|message| StateError::Codec { message })?;
    let length = u32::try_from(out.len() - GROUP_BYTES - 4)
        .map_err(|_| StateError::Codec { message: "a state key longer than 4 GiB".to_string() })?;
    out[GROUP_BYTES..GROUP_BYTES + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// Appends the state id and the namespace to a key prefix.
pub(super) fn push_state_and_namespace(state: u32, at: Namespace, out: &mut Vec<u8>) {
    out.extend_from_slice(&(state as u16).to_be_bytes());
    match at {
        Namespace::Global => out.push(GLOBAL),
        Namespace::Window(window) => {
            out.push(WINDOW);
            out.extend_from_slice(&ordered(window.start));
            out.extend_from_slice(&ordered(window.end));
        }
    }
}

/// The parts of a store key.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct StoreKey {
    pub(super) key_group: u32,
    pub(super) key: Value,
    pub(super) state: u32,
    pub(super) namespace: Namespace,
}

/// Splits a store key into its parts; a key that does not follow the layout is corrupt.
pub(super) fn parse_key(bytes: &[u8]) -> Result<StoreKey, String> {
    let (group, rest) = split(bytes, GROUP_BYTES)?;
    let key_group = u32::from_be_bytes(group.try_into().map_err(|_| "short key group".to_string())?);
    let (length, rest) = split(rest, 4)?;
    let length = u32::from_be_bytes(length.try_into().map_err(|_| "short key length".to_string())?) as usize;
    let (key, rest) = split(rest, length)?;
    let key: Value = decode_exact(key)?;
    let (state, rest) = split(rest, 2)?;
    let state = u16::from_be_bytes(state.try_into().map_err(|_| "short state id".to_string())?) as u32;
    let namespace = match rest {
        [GLOBAL] => Namespace::Global,
        [WINDOW, window @ ..] if window.len() == 16 => {
            let (start, end) = window.split_at(8);
            let start = from_ordered(start.try_into().map_err(|_| "short window".to_string())?);
            let end = from_ordered(end.try_into().map_err(|_| "short window".to_string())?);
            Namespace::Window(TimeWindow { start, end })
        }
        _ => return Err(format!("a namespace of {} bytes that is neither global nor a window", rest.len())),
    };
    Ok(StoreKey { key_group, key, state, namespace })
}

fn split(bytes: &[u8], at: usize) -> Result<(&[u8], &[u8]), String> {
    if bytes.len() < at {
        return Err(format!("a state key cut short ({} bytes where {at} are needed)", bytes.len()));
    }
    Ok(bytes.split_at(at))
}

/// The key right after every key that starts with `prefix` (`None`: no such key).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key_group: u32, key: &Value, state: u32, at: Namespace) -> Vec<u8> {
        let mut out = Vec::new();
        key_prefix(key_group, key, &mut out).unwrap();
        push_state_and_namespace(state, at, &mut out);
        out
    }

    #[test]
    fn keys_parse_back_to_their_parts() {
        let window = Namespace::Window(TimeWindow { start: -5, end: i64::MAX });
        for (group, value, state, at) in [
            (0, Value::Int(-3), 0, Namespace::Global),
            (127, Value::str("page"), 7, window),
            (u32::MAX, Value::List(vec![Value::Int(1), Value::Null].into()), 65_535, Namespace::Global),
        ] {
            let parsed = parse_key(&key(group, &value, state, at)).unwrap();
            assert_eq!(parsed, StoreKey { key_group: group, key: value, state, namespace: at });
        }
    }

    #[test]
    fn namespaces_of_one_key_sort_as_namespaces_do() {
        let mut namespaces = vec![Namespace::Global];
        for (start, end) in [(-10, 0), (-10, 5), (0, 1), (3, 4), (i64::MIN, i64::MIN + 1)] {
            namespaces.push(Namespace::Window(TimeWindow { start, end }));
        }
        let mut keys: Vec<(Vec<u8>, Namespace)> =
            namespaces.iter().map(|at| (key(3, &Value::Int(9), 1, *at), *at)).collect();
        keys.sort();
        namespaces.sort();
        assert_eq!(keys.into_iter().map(|(_, at)| at).collect::<Vec<_>>(), namespaces);
    }

    #[test]
    fn a_key_prefix_is_not_the_prefix_of_a_longer_key() {
        let (short, long) =
            (key(1, &Value::str("a"), 0, Namespace::Global), key(1, &Value::str("ab"), 0, Namespace::Global));
        let mut prefix = Vec::new();
        key_prefix(1, &Value::str("a"), &mut prefix).unwrap();
        assert!(short.starts_with(&prefix));
        assert!(!long.starts_with(&prefix));
    }

    #[test]
    fn malformed_keys_are_errors_not_panics() {
        let good = key(2, &Value::str("k"), 1, Namespace::Global);
        for cut in 0..good.len() {
            assert!(parse_key(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_namespace = good.clone();
        *bad_namespace.last_mut().unwrap() = 9;
        assert!(parse_key(&bad_namespace).is_err());
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn the_memory_store_scans_half_open_ranges_in_order() {
        let mut store = MemoryStateStore::new();
        let batch: WriteBatch = (0u8..10).map(|n| (vec![n], Some(vec![n * 2]))).collect();
        store.write(&batch).unwrap();
        store.write(&vec![(vec![4], None)]).unwrap();
        let mut seen = Vec::new();
        store
            .scan(&[2], &[7], &mut |key, value| {
                seen.push((key[0], value[0]));
                key[0] < 5
            })
            .unwrap();
        assert_eq!(seen, [(2, 4), (3, 6), (5, 10)]);
        assert_eq!(store.get(&[4]).unwrap(), None);
        assert_eq!(store.len(), 9);
    }
}
