//! `high-availability.type: etcd`: the lease and the records in etcd v3, through etcd's JSON
//! gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/lease/grant`; keys and values base64) over the
//! CLI's small blocking HTTP client. The gateway needs no gRPC stack and no `protoc` at build
//! time, and every call here is one request and one answer; keep-alive streams are not used.
//!
//! Keys under `/weir/<cluster-id>/`:
//! - `leader`: the holder (candidate and addresses) and its epoch, attached to an etcd lease of
//!   `high-availability.lease-duration` (whole seconds, rounded up): it exists while the lease
//!   lives, so etcd's own clock decides expiry;
//! - `epoch`: the highest epoch ever granted (never expires);
//! - `records`: core's [`RecordStore`] as JSON.
//!
//! Acquire: grant an etcd lease, then one transaction: if `leader` does not exist and `epoch`
//! is unchanged since it was read (mod revision), put `leader` on the new lease and `epoch + 1`.
//! Renew: grant a fresh lease and move `leader` onto it, if `leader` is unchanged since it was
//! read and names this candidate in this epoch (a lease granted after the request left holds at
//! least `lease-duration` from the request, which is what the election assumes). A record write:
//! read `epoch` and `records`, refuse a write from below `epoch`, else put the new records if
//! neither key changed since (compare on mod revision), retrying when another write came first.
//! So a write from a deposed leader is refused as soon as the successor's grant is committed.

use super::Backend;
use crate::cli::http::Endpoint;
use serde_json::{Value, json};
use weir_core::ha::{HaRecords, HaWrite, RecordStore, StaleEpoch};
use weir_core::ids::Epoch;
use weir_core::leader::{Holder, LeaseView, StoreReply, StoreRequest};

/// How often a compare-and-set that lost a race is tried again before the call fails.
const CAS_ATTEMPTS: usize = 16;

/// One process's client of the cluster.
pub struct EtcdStore {
    endpoints: Vec<Endpoint>,
    prefix: String,
}

/// A key as read: its value and mod revision (0: absent).
struct Read {
    value: Option<Vec<u8>>,
    mod_revision: i64,
}

/// What `leader` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct LeaderValue {
    holder: Holder,
    epoch: Epoch,
}

impl EtcdStore {
    /// A client of `endpoints` (`http://host:port` or `host:port`) for cluster `cluster_id`.
    pub fn open(endpoints: &[String], cluster_id: &str) -> Result<EtcdStore, String> {
        let endpoints = endpoints
            .iter()
            .map(|endpoint| {
                Endpoint::new(endpoint)
                    .map_err(|_| format!("high-availability.etcd.endpoints: {endpoint:?} is not HOST:PORT"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err("high-availability.etcd.endpoints names no endpoint".to_string());
        }
        Ok(EtcdStore { endpoints, prefix: format!("/weir/{cluster_id}/") })
    }

    /// POSTs `body` to `path` at the first endpoint that answers.
    fn call(&self, path: &str, body: &Value) -> Result<Value, String> {
        let bytes = body.to_string().into_bytes();
        let mut last = String::new();
        for endpoint in &self.endpoints {
            match endpoint.request("POST", path, Some(&bytes)) {
                Ok(response) if response.status == 200 => return Ok(response.json()),
                Ok(response) => {
                    return Err(format!("etcd {path}: HTTP {}: {}", response.status, response.error_message()));
                }
                Err(error) => last = error,
            }
        }
        Err(format!("etcd is unreachable: {last}"))
    }

    fn key(&self, name: &str) -> String {
        base64_encode(format!("{}{name}", self.prefix).as_bytes())
    }

    fn read(&self, name: &str) -> Result<Read, String> {
        let answer = self.call("/v3/kv/range", &json!({ "key": self.key(name) }))?;
        let Some(kv) = answer["kvs"].as_array().and_then(|kvs| kvs.first()) else {
            return Ok(Read { value: None, mod_revision: 0 });
        };
        let value = base64_decode(kv["value"].as_str().unwrap_or_default())?;
        Ok(Read { value: Some(value), mod_revision: int(&kv["mod_revision"]) })
    }

    /// Grants an etcd lease of `ttl` (whole seconds, at least 1); its id.
    fn grant(&self, ttl: weir_core::time::Duration) -> Result<String, String> {
        let seconds = ttl.0.div_ceil(1_000_000).max(1);
        let answer = self.call("/v3/lease/grant", &json!({ "TTL": seconds.to_string(), "ID": "0" }))?;
        match int(&answer["ID"]) {
            0 => Err(format!("etcd granted no lease: {answer}")),
            id => Ok(id.to_string()),
        }
    }

    /// One transaction: `puts` if every key in `unchanged` still has its mod revision; whether
    /// it did, and the store's revision after.
    fn txn(&self, unchanged: &[(&str, i64)], puts: &[(&str, Vec<u8>, Option<&str>)]) -> Result<(bool, i64), String> {
        let compare: Vec<Value> = unchanged
            .iter()
            .map(|(name, revision)| {
                let revision = revision.to_string();
                json!({ "key": self.key(name), "target": "MOD", "result": "EQUAL", "mod_revision": revision })
            })
            .collect();
        let success: Vec<Value> = puts
            .iter()
            .map(|(name, value, lease)| {
                let mut put = json!({ "key": self.key(name), "value": base64_encode(value) });
                if let Some(lease) = lease {
                    put["lease"] = json!(lease);
                }
                json!({ "request_put": put })
            })
            .collect();
        let answer = self.call("/v3/kv/txn", &json!({ "compare": compare, "success": success, "failure": [] }))?;
        Ok((answer["succeeded"].as_bool().unwrap_or(false), int(&answer["header"]["revision"])))
    }

    /// The lease as it stands; also the raw reads for a compare-and-set.
    fn view(&self) -> Result<(LeaseView, Read, Read), String> {
        let leader = self.read("leader")?;
        let epoch_read = self.read("epoch")?;
        let epoch = match &epoch_read.value {
            Some(bytes) => parse::<Epoch>(bytes, "epoch")?,
            None => Epoch(0),
        };
        let holder = match &leader.value {
            Some(bytes) => Some(parse::<LeaderValue>(bytes, "leader")?.holder),
            None => None,
        };
        let revision = leader.mod_revision.max(epoch_read.mod_revision) as u64;
        let view = LeaseView { live: leader.value.is_some(), holder, epoch, revision };
        Ok((view, leader, epoch_read))
    }
}

impl Backend for EtcdStore {
    fn lease(&mut self, request: StoreRequest) -> Result<StoreReply, String> {
        match request {
            StoreRequest::Acquire { request, candidate, address, ttl, .. } => {
                let (view, leader, epoch_read) = self.view()?;
                if view.live {
                    return Ok(StoreReply::Refused { request, view });
                }
                let lease = self.grant(ttl)?;
                let epoch = Epoch(view.epoch.0.saturating_add(1));
                let value = LeaderValue { holder: Holder { candidate, address }, epoch };
                let leader_bytes = serde_json::to_vec(&value).map_err(|error| error.to_string())?;
                let epoch_bytes = serde_json::to_vec(&epoch).map_err(|error| error.to_string())?;
                let (done, revision) = self.txn(
                    &[("leader", leader.mod_revision), ("epoch", epoch_read.mod_revision)],
                    &[("leader", leader_bytes, Some(&lease)), ("epoch", epoch_bytes, None)],
                )?;
                if done {
                    return Ok(StoreReply::Granted { request, epoch, revision: revision as u64 });
                }
                Ok(StoreReply::Refused { request, view: self.view()?.0 })
            }
            StoreRequest::Renew { request, candidate, epoch, ttl } => {
                let (view, leader, _) = self.view()?;
                let ours = view.live
                    && view.epoch == epoch
                    && view.holder.as_ref().is_some_and(|holder| holder.candidate == candidate);
                let Some(bytes) = leader.value.filter(|_| ours) else {
                    return Ok(StoreReply::Refused { request, view });
                };
                let lease = self.grant(ttl)?;
                let (done, _) = self.txn(&[("leader", leader.mod_revision)], &[("leader", bytes, Some(&lease))])?;
                if done {
                    return Ok(StoreReply::Renewed { request, epoch });
                }
                Ok(StoreReply::Refused { request, view: self.view()?.0 })
            }
            StoreRequest::Release { request, candidate, epoch } => {
                let (view, leader, _) = self.view()?;
                let ours = view.live
                    && view.epoch == epoch
                    && view.holder.as_ref().is_some_and(|holder| holder.candidate == candidate);
                if ours {
                    // A one-second lease: the key goes soon, the epoch stays.
                    let lease = self.grant(weir_core::time::Duration::from_millis(1000))?;
                    let bytes = leader.value.unwrap_or_default();
                    self.txn(&[("leader", leader.mod_revision)], &[("leader", bytes, Some(&lease))])?;
                }
                Ok(StoreReply::State { request, view: self.view()?.0 })
            }
            StoreRequest::Read { request } => Ok(StoreReply::State { request, view: self.view()?.0 }),
        }
    }

    fn write(&mut self, write: &HaWrite) -> Result<Result<(), StaleEpoch>, String> {
        for _ in 0..CAS_ATTEMPTS {
            let epoch_read = self.read("epoch")?;
            let records_read = self.read("records")?;
            let mut records: RecordStore = match &records_read.value {
                Some(bytes) => parse(bytes, "records")?,
                None => RecordStore::new(),
            };
            if let Some(bytes) = &epoch_read.value {
                records.observe_epoch(parse::<Epoch>(bytes, "epoch")?); // the fence
            }
            if let Err(stale) = records.apply(write.clone()) {
                return Ok(Err(stale));
            }
            let bytes = serde_json::to_vec(&records).map_err(|error| error.to_string())?;
            let unchanged = [("epoch", epoch_read.mod_revision), ("records", records_read.mod_revision)];
            if self.txn(&unchanged, &[("records", bytes, None)])?.0 {
                return Ok(Ok(()));
            }
        }
        Err(format!("the records kept changing under {CAS_ATTEMPTS} attempts to write"))
    }

    fn records(&mut self) -> Result<HaRecords, String> {
        let read = self.read("records")?;
        match read.value {
            Some(bytes) => parse::<RecordStore>(&bytes, "records").map(|store| store.records().clone()),
            None => Ok(HaRecords::default()),
        }
    }

    fn leader(&mut self) -> Result<LeaseView, String> {
        self.view().map(|(view, _, _)| view)
    }
}

/// An int64 as the gateway writes it (a string) or as a number; 0 when absent.
fn int(value: &Value) -> i64 {
    value.as_str().and_then(|text| text.parse().ok()).or(value.as_i64()).unwrap_or(0)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|error| format!("etcd key {key} is malformed: {error}"))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as the gateway's `bytes` fields are.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let triple = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(ALPHABET[(triple >> (18 - 6 * index) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); an error names the bad input.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes().filter(|byte| *byte != b'=') {
        let value =
            ALPHABET.iter().position(|symbol| *symbol == byte).ok_or_else(|| format!("not base64: {text:?}"))?;
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
