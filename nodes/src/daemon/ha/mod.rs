//! High availability in the daemons: the driver side of core's leader election
//! ([`weir_core::leader`]) and HA records ([`weir_core::ha`]) against a real store.
//!
//! - [`Backend`]: one store (`file`: [`file::FileStore`], `etcd`: [`etcd::EtcdStore`]) answering lease requests, fenced
//!   record writes, record reads and leader retrieval, blocking;
//! - [`Service`]: threads that carry out a JobManager's lease requests and record writes against
//!   its backend, each kind in order, and post the answers to the control task;
//! - [`candidate::Candidacy`]: a JobManager's election, fed by the service's answers;
//! - [`standby`]: REST on a JobManager that does not lead (503 with the leader's address);
//! - [`spawn_retrieval`]: TaskManagers' leader retrieval, polling the store.
//!
//! With `high-availability.type: none` no backend exists: the JobManager keeps its jobs in local
//! RocksDB ([`super::metadata`]) and leads alone in the epoch after its last one.

pub mod candidate;
pub mod etcd;
pub mod file;
pub mod standby;

use std::sync::mpsc;
use std::time::Duration;
use weir_core::config::{HaConfig, HaType};
use weir_core::ha::{HaRecords, HaWrite, StaleEpoch};
use weir_core::ids::Epoch;
use weir_core::leader::{LeaseView, StoreReply, StoreRequest};
use weir_core::time::Time;

/// A lease store and record store, as one backend sees it. Calls block; errors are I/O or
/// malformed content, said in words.
pub trait Backend: Send + 'static {
    /// Carries out one lease request atomically.
    fn lease(&mut self, request: StoreRequest) -> Result<StoreReply, String>;
    /// Applies `write` unless its epoch is below the newest lease's or the newest write's.
    fn write(&mut self, write: &HaWrite) -> Result<Result<(), StaleEpoch>, String>;
    /// The records as stored.
    fn records(&mut self) -> Result<HaRecords, String>;
    /// The lease as it stands (leader retrieval).
    fn leader(&mut self) -> Result<LeaseView, String>;
}

/// The backend `config` names, or `None` for `high-availability.type: none`.
pub fn open(config: &HaConfig) -> Result<Option<Box<dyn Backend>>, String> {
    match config.kind {
        HaType::None => Ok(None),
        HaType::File => {
            let storage_dir = config.storage_dir.as_deref().ok_or("high-availability.storageDir is required")?;
            let storage_dir = storage_dir.strip_prefix("file://").unwrap_or(storage_dir);
            Ok(Some(Box::new(file::FileStore::open(storage_dir, cluster_name(&config.cluster_id)?)?)))
        }
        HaType::Etcd => {
            let name = cluster_name(&config.cluster_id)?;
            Ok(Some(Box::new(etcd::EtcdStore::open(&config.etcd_endpoints, name)?)))
        }
    }
}

/// `high-availability.cluster-id` as one path segment: Flink's `/default` is `default`.
pub fn cluster_name(cluster_id: &str) -> Result<&str, String> {
    let name = cluster_id.trim_matches('/');
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\']);
    if plain { Ok(name) } else { Err(format!("high-availability.cluster-id {cluster_id:?} is not one plain name")) }
}

/// Where a leader is reached: its RPC endpoint (TaskManagers) and REST endpoint (clients),
/// published in the lease as the holder's address `rpc=HOST:PORT rest=HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderAddress {
    /// `host:port` of its RPC endpoint.
    pub rpc: String,
    /// `host:port` of its REST endpoint.
    pub rest: String,
}

impl LeaderAddress {
    /// The form stored in the lease.
    pub fn encode(&self) -> String {
        format!("rpc={} rest={}", self.rpc, self.rest)
    }

    /// Reads the stored form; `None` when it is not one.
    pub fn parse(text: &str) -> Option<LeaderAddress> {
        let mut parts = text.split(' ');
        let rpc = parts.next()?.strip_prefix("rpc=")?;
        let rest = parts.next()?.strip_prefix("rest=")?;
        (parts.next().is_none() && !rpc.is_empty() && !rest.is_empty())
            .then(|| LeaderAddress { rpc: rpc.to_string(), rest: rest.to_string() })
    }

    /// The live leader `view` shows, with its epoch.
    pub fn of_view(view: &LeaseView) -> Option<(LeaderAddress, Epoch)> {
        let holder = view.holder.as_ref().filter(|_| view.live)?;
        LeaderAddress::parse(&holder.address).map(|address| (address, view.epoch))
    }
}

/// The store's clock: wall-clock microseconds since the Unix epoch, the same on every process of
/// one host (and, up to the drift `high-availability.lease-margin` covers, on a shared FS).
pub fn store_now() -> Time {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Time(since.as_micros() as u64)
}

/// What a JobManager asks of its store.
#[derive(Debug)]
pub enum HaRequest {
    /// An election request.
    Lease(StoreRequest),
    /// A record write from the leader.
    Write(HaWrite),
    /// The records, for the new leader of `epoch`.
    Records { epoch: Epoch },
}

/// What comes back.
#[derive(Debug)]
pub enum HaAnswer {
    /// The store answered an election request.
    Lease(StoreReply),
    /// The write is stored.
    Written(HaWrite),
    /// The write was refused: a newer leader exists.
    Stale(StaleEpoch),
    /// The records, read for the leader of `epoch`.
    Records { epoch: Epoch, records: Result<HaRecords, String> },
}

/// How long a failed record write waits before it is tried again.
const WRITE_RETRY: Duration = Duration::from_millis(100);

/// Two threads carrying out a JobManager's requests: one for the lease, one for the records, each
/// in order and with its own connection to the store. Lease requests never wait behind record
/// writes (a checkpoint's writes queued ahead of a renewal could make the leader fence itself);
/// they need no order between them, as the store fences every write on its own.
pub struct Service {
    lease: mpsc::Sender<HaRequest>,
    records: mpsc::Sender<HaRequest>,
}

impl Service {
    /// Starts the threads over two handles on one store; `answer` posts each answer to the
    /// control task (false: it is gone).
    pub fn start(
        lease: Box<dyn Backend>,
        records: Box<dyn Backend>,
        answer: Box<dyn Fn(HaAnswer) -> bool + Send + Sync>,
    ) -> Service {
        let answer: std::sync::Arc<dyn Fn(HaAnswer) -> bool + Send + Sync> = answer.into();
        Service {
            lease: spawn_worker("ha-lease", lease, answer.clone()),
            records: spawn_worker("ha-records", records, answer),
        }
    }

    /// Queues `request` on its thread.
    pub fn send(&self, request: HaRequest) {
        let queue = if matches!(request, HaRequest::Lease(_)) { &self.lease } else { &self.records };
        if queue.send(request).is_err() {
            tracing::error!("an HA store thread has stopped; a request was dropped");
        }
    }
}

/// A thread that carries out requests on `backend` in order.
fn spawn_worker(
    name: &str,
    mut backend: Box<dyn Backend>,
    answer: std::sync::Arc<dyn Fn(HaAnswer) -> bool + Send + Sync>,
) -> mpsc::Sender<HaRequest> {
    let (requests, receiver) = mpsc::channel::<HaRequest>();
    let work = move || {
        while let Ok(request) = receiver.recv() {
            let reply = match request {
                // A failed lease request goes unanswered: the election forgets it and a leader
                // that cannot renew fences itself at its deadline.
                HaRequest::Lease(request) => match backend.lease(request) {
                    Ok(reply) => Some(HaAnswer::Lease(reply)),
                    Err(error) => {
                        tracing::warn!("the HA store did not answer a lease request: {error}");
                        None
                    }
                },
                HaRequest::Write(write) => Some(write_until_done(backend.as_mut(), write)),
                HaRequest::Records { epoch } => Some(HaAnswer::Records { epoch, records: backend.records() }),
            };
            if let Some(reply) = reply
                && !answer(reply)
            {
                return;
            }
        }
    };
    if let Err(error) = std::thread::Builder::new().name(name.to_string()).spawn(work) {
        tracing::error!("cannot start the HA store thread {name}: {error}");
    }
    requests
}

/// Writes until the store answers: a record must not be lost (the checkpoint it names would never
/// be acknowledged, so sinks never commit past it). A store that stays unreachable fails the
/// lease renewals too, so the leader fences itself rather than acting unrecorded.
fn write_until_done(backend: &mut dyn Backend, write: HaWrite) -> HaAnswer {
    loop {
        match backend.write(&write) {
            Ok(Ok(())) => return HaAnswer::Written(write),
            Ok(Err(stale)) => return HaAnswer::Stale(stale),
            Err(error) => {
                tracing::warn!("an HA record write failed, trying again: {error}");
                std::thread::sleep(WRITE_RETRY);
            }
        }
    }
}

/// Leader retrieval: polls `backend` every `interval` and passes every lease it reads to `found`
/// (false: the receiver is gone and the thread ends).
pub fn spawn_retrieval(
    mut backend: Box<dyn Backend>,
    interval: Duration,
    found: Box<dyn Fn(LeaseView) -> bool + Send>,
) -> Result<(), String> {
    let work = move || {
        loop {
            match backend.leader() {
                Ok(view) => {
                    if !found(view) {
                        return;
                    }
                }
                Err(error) => tracing::warn!("leader retrieval cannot read the HA store: {error}"),
            }
            std::thread::sleep(interval);
        }
    };
    std::thread::Builder::new()
        .name("leader-retrieval".into())
        .spawn(work)
        .map(|_| ())
        .map_err(|error| format!("cannot start leader retrieval: {error}"))
}

/// How often TaskManagers and standbys look for the leader: twice per renew interval, so a new
/// leader is found well within one interval of its grant.
pub fn retrieval_interval(config: &HaConfig) -> Duration {
    Duration::from_micros((config.renew_interval.0 / 2).max(20_000))
}

#[cfg(test)]
mod tests;
