//! The lease store's side of election: what a linearizable store (etcd, a lock file, the
//! simulator's store node) answers, as one pure reference implementation.
//!
//! The lease lives in store time: a grant or renewal at store time `t` holds until `t + ttl`.
//! Acquiring is a compare-and-set on the store's revision and succeeds only while nobody holds a
//! live lease; each grant takes the highest epoch ever granted plus one, so epochs only grow.
//! Backends that are not this struct must answer the same way (`file` and `etcd` do it with
//! their own compare-and-set).

use super::{CandidateId, Holder, LeaseView, RequestId, StoreReply, StoreRequest};
use crate::ids::Epoch;
use crate::time::Time;
use serde::{Deserialize, Serialize};

/// A lease register: holder, expiry (store time), highest epoch and revision. Serializable, so a
/// backend that keeps the register in a file (`file` HA) applies this very logic to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseStore {
    holder: Option<Holder>,
    expires_at: Time,
    epoch: Epoch,
    revision: u64,
}

impl LeaseStore {
    /// An empty store: no holder, epoch 0, revision 0.
    pub fn new() -> LeaseStore {
        LeaseStore::default()
    }

    /// The highest epoch ever granted.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// What a reader sees at store time `now`.
    pub fn view(&self, now: Time) -> LeaseView {
        LeaseView {
            holder: self.holder.clone(),
            epoch: self.epoch,
            revision: self.revision,
            live: self.holder.is_some() && now < self.expires_at,
        }
    }

    fn holds(&self, now: Time, candidate: &CandidateId, epoch: Epoch) -> bool {
        let view = self.view(now);
        view.live && view.epoch == epoch && view.holder.is_some_and(|holder| &holder.candidate == candidate)
    }

    /// Carries out one request atomically at store time `now`.
    pub fn apply(&mut self, now: Time, request: StoreRequest) -> StoreReply {
        match request {
            StoreRequest::Acquire { request, candidate, address, ttl, expected_revision } => {
                let view = self.view(now);
                if view.live || expected_revision != self.revision {
                    return StoreReply::Refused { request, view };
                }
                self.epoch = Epoch(self.epoch.0.saturating_add(1));
                self.revision += 1;
                self.holder = Some(Holder { candidate, address });
                self.expires_at = now.after(ttl);
                StoreReply::Granted { request, epoch: self.epoch, revision: self.revision }
            }
            StoreRequest::Renew { request, candidate, epoch, ttl } => {
                if !self.holds(now, &candidate, epoch) {
                    return StoreReply::Refused { request, view: self.view(now) };
                }
                self.revision += 1;
                self.expires_at = now.after(ttl);
                StoreReply::Renewed { request, epoch }
            }
            StoreRequest::Release { request, candidate, epoch } => {
                if self.holds(now, &candidate, epoch) {
                    self.revision += 1;
                    self.expires_at = now; // expired from this instant; the epoch stays
                }
                StoreReply::State { request, view: self.view(now) }
            }
            StoreRequest::Read { request } => StoreReply::State { request, view: self.view(now) },
        }
    }
}

/// The request id a reply answers.
pub fn reply_request(reply: &StoreReply) -> RequestId {
    match reply {
        StoreReply::Granted { request, .. }
        | StoreReply::Renewed { request, .. }
        | StoreReply::Refused { request, .. }
        | StoreReply::State { request, .. } => *request,
    }
}
