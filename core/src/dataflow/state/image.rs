//! What a snapshot holds of one key group, and the codecs of list and map states: shared by
//! the heap and the store backends, so that each restores the other's snapshots.

use super::{MapCodecs, Namespace, StateCodec, StateError, StateKey, StateType, decode_exact, encode_to_vec};
use crate::row::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One key group as a snapshot stores it.
#[derive(Serialize, Deserialize)]
pub(super) struct GroupImage {
    pub(super) states: Vec<StateImage>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct StateImage {
    pub(super) name: String,
    pub(super) entries: Vec<EntryImage>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct EntryImage {
    pub(super) key: Value,
    pub(super) namespace: Namespace,
    pub(super) value: Vec<u8>,
}

/// A list state's codec: each item's bytes, in a list.
pub(super) struct ListCodec<T> {
    pub(super) item: Box<dyn StateCodec<T>>,
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
