//! Leader election over a lease store, with a fencing epoch that only grows.
//!
//! [`LeaderElection`] is one candidate JobManager's side, sans-IO: it takes the time of its
//! own (possibly skewed and drifting) clock with every input, asks the driver to send store
//! requests ([`StoreRequest`]) and reports role changes ([`LeaderRole`]). The store's side is
//! [`store::LeaseStore`], a linearizable register that backends imitate.
//!
//! Safety: a lease granted or renewed by a request sent at local time `s` holds at the store
//! until at least store time `s + ttl` (the store grants after the request left). The leader
//! acts only before local `s + ttl - margin`; `margin` covers the clock running slow by up to
//! `margin / (ttl - margin)`, so the old leader stops before the store can grant the lease to
//! anyone else. The store grants only an expired lease and each grant takes the previous epoch
//! plus one, so no two candidates ever lead in one epoch and a later leader's epoch is higher.
//! Late outputs of a deposed leader (a paused process that wakes) carry its old epoch, which
//! stores and TaskExecutors refuse once they saw a higher one.
//!
//! Invariants (checked by [`LeaderElection::check_invariants`] and the proptests): the epoch led
//! only grows; a leader's deadline never exceeds the newest grant's send time plus `ttl - margin`;
//! at most `IN_FLIGHT_MAX` requests are remembered.

pub mod store;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use crate::ids::Epoch;
use crate::time::{Duration, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How many unanswered requests a candidate remembers (an older reply is ignored).
pub const IN_FLIGHT_MAX: usize = 8;

/// Identifies one candidate process (one incarnation: a restarted process is a new candidate).
pub type CandidateId = String;
/// Matches a store reply to its request.
pub type RequestId = u64;

/// The holder of a lease and where it can be reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Who.
    pub candidate: CandidateId,
    /// Its address for TaskManagers and clients (leader retrieval).
    pub address: String,
}

/// The lease as the store shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseView {
    /// The last holder (kept after expiry, so readers know who it was).
    pub holder: Option<Holder>,
    /// The highest epoch ever granted.
    pub epoch: Epoch,
    /// Changes with every successful write: the compare-and-set token.
    pub revision: u64,
    /// Whether the holder's lease is unexpired at the store.
    pub live: bool,
}

/// What a candidate asks of the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreRequest {
    /// Take the lease for `ttl` if nobody holds it live and the revision is still `expected_revision`.
    Acquire { request: RequestId, candidate: CandidateId, address: String, ttl: Duration, expected_revision: u64 },
    /// Extend the lease held in `epoch` by `ttl` from now.
    Renew { request: RequestId, candidate: CandidateId, epoch: Epoch, ttl: Duration },
    /// Give the lease up (a leader shutting down cleanly), so a standby need not wait for expiry.
    Release { request: RequestId, candidate: CandidateId, epoch: Epoch },
    /// Who holds it (leader retrieval).
    Read { request: RequestId },
}

/// The store's answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreReply {
    /// The lease is the requester's, in `epoch`.
    Granted { request: RequestId, epoch: Epoch, revision: u64 },
    /// The requester's lease in `epoch` was extended.
    Renewed { request: RequestId, epoch: Epoch },
    /// Not done: the lease as it stands.
    Refused { request: RequestId, view: LeaseView },
    /// The lease as it stands (answer to a read or a release).
    State { request: RequestId, view: LeaseView },
}

/// A candidate's role, reported when it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderRole {
    /// This candidate leads in `epoch` and may act until told otherwise.
    Leading { epoch: Epoch },
    /// Another candidate leads (`leader`'s address and epoch), or nobody is known to.
    Standby { leader: Option<(String, Epoch)> },
    /// This candidate led in `epoch` and must stop acting now: its lease could not be renewed
    /// in time or was lost.
    Fenced { epoch: Epoch },
}

/// What a candidate asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionOutput {
    /// Send this to the store; the reply comes back through [`LeaderElection::handle_reply`].
    Store(StoreRequest),
    /// The role changed.
    Role(LeaderRole),
}

/// Lease timing, from `high-availability.*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElectionTiming {
    /// How long a grant or renewal holds at the store.
    pub lease: Duration,
    /// How often the leader renews, and how often a standby campaigns.
    pub renew_interval: Duration,
    /// How long before its lease could expire a leader stops acting (clock drift, slow store).
    pub margin: Duration,
}

impl ElectionTiming {
    /// The timing `config` gives.
    pub fn from_config(config: &crate::config::HaConfig) -> ElectionTiming {
        ElectionTiming {
            lease: config.lease_duration,
            renew_interval: config.renew_interval,
            margin: config.lease_margin,
        }
    }

    /// How long a leader may act after sending the request that (re)gained its lease.
    fn acting_span(self) -> Duration {
        Duration(self.lease.0.saturating_sub(self.margin.0))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Acquire,
    Renew,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not leading: campaigns at `next_attempt_at`.
    Candidate { next_attempt_at: Time },
    /// Leading in `epoch` until local `deadline`; renews at `renew_at`.
    Leading { epoch: Epoch, deadline: Time, renew_at: Time },
}

/// One candidate's election.
#[derive(Debug)]
pub struct LeaderElection {
    candidate: CandidateId,
    address: String,
    timing: ElectionTiming,
    state: State,
    /// The last lease the store showed: its revision is the next acquire's expectation.
    view: Option<LeaseView>,
    /// The highest epoch this candidate has led in.
    epoch_led: Epoch,
    /// Unanswered requests: when they were sent and what they ask.
    in_flight: BTreeMap<RequestId, (Time, Kind)>,
    request_next: RequestId,
    /// The role last reported.
    role: Option<LeaderRole>,
    outputs: VecDeque<ElectionOutput>,
}

impl LeaderElection {
    /// A candidate named `candidate` (unique per process incarnation), reachable at `address`,
    /// that campaigns at once.
    pub fn new(candidate: CandidateId, address: String, timing: ElectionTiming, now: Time) -> LeaderElection {
        assert!(timing.acting_span() > timing.renew_interval, "a leader must renew before it would fence");
        LeaderElection {
            candidate,
            address,
            timing,
            state: State::Candidate { next_attempt_at: now },
            view: None,
            epoch_led: Epoch(0),
            in_flight: BTreeMap::new(),
            request_next: 1,
            role: None,
            outputs: VecDeque::new(),
        }
    }

    /// The epoch this candidate may act in at local time `now`, if it leads.
    pub fn leading(&self, now: Time) -> Option<Epoch> {
        match self.state {
            State::Leading { epoch, deadline, .. } if now < deadline => Some(epoch),
            _ => None,
        }
    }

    /// The candidate's name.
    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// The last lease the store showed.
    pub fn view(&self) -> Option<&LeaseView> {
        self.view.as_ref()
    }

    /// When it needs a tick next (local time).
    pub fn poll_timeout(&self) -> Option<Time> {
        let timeouts = self.in_flight.values().map(|(sent, _)| sent.after(self.timing.renew_interval));
        let own = match self.state {
            State::Candidate { next_attempt_at } => next_attempt_at,
            State::Leading { deadline, renew_at, .. } => deadline.min(renew_at),
        };
        timeouts.chain([own]).min()
    }

    /// The next output for the driver.
    pub fn poll_output(&mut self) -> Option<ElectionOutput> {
        self.outputs.pop_front()
    }

    /// Time passed: fences a leader past its deadline, renews, campaigns, forgets requests that
    /// went unanswered for a renew interval.
    pub fn handle_tick(&mut self, now: Time) {
        let unanswered = self.timing.renew_interval;
        self.in_flight.retain(|_, (sent, _)| now < sent.after(unanswered));
        match self.state {
            State::Leading { epoch, deadline, .. } if now >= deadline => self.fence(now, epoch),
            State::Leading { epoch, deadline, renew_at } if now >= renew_at => {
                self.state = State::Leading { epoch, deadline, renew_at: now.after(self.timing.renew_interval) };
                self.request_renew(now, epoch);
            }
            State::Candidate { next_attempt_at } if now >= next_attempt_at => {
                self.state = State::Candidate { next_attempt_at: now.after(self.timing.renew_interval) };
                self.request_acquire(now);
            }
            _ => {}
        }
    }

    /// A store reply arrived at local time `now`. Replies to forgotten requests are ignored.
    pub fn handle_reply(&mut self, now: Time, reply: StoreReply) {
        self.handle_tick(now); // fence first: a reply does not revive an expired lease
        let Some((sent, kind)) = self.in_flight.remove(&store::reply_request(&reply)) else { return };
        match reply {
            StoreReply::Granted { epoch, revision, .. } if kind == Kind::Acquire && epoch > self.epoch_led => {
                let deadline = sent.after(self.timing.acting_span());
                self.view = Some(LeaseView {
                    holder: Some(Holder { candidate: self.candidate.clone(), address: self.address.clone() }),
                    epoch,
                    revision,
                    live: true,
                });
                if now >= deadline {
                    return; // granted too late to act on; it expires and another round follows
                }
                if let State::Leading { epoch: old, .. } = self.state {
                    self.fence(now, old); // cannot happen with one store, but never lead twice
                }
                self.epoch_led = epoch;
                let renew_at = sent.after(self.timing.renew_interval).max(now);
                self.state = State::Leading { epoch, deadline, renew_at };
                self.set_role(LeaderRole::Leading { epoch });
            }
            StoreReply::Renewed { epoch, .. } if kind == Kind::Renew => {
                if let State::Leading { epoch: leading, deadline, renew_at } = self.state
                    && leading == epoch
                {
                    let deadline = deadline.max(sent.after(self.timing.acting_span()));
                    self.state = State::Leading { epoch, deadline, renew_at };
                }
            }
            StoreReply::Refused { view, .. } | StoreReply::State { view, .. } => self.observe(now, kind, view),
            _ => {}
        }
    }

    /// The store showed `view`: a leader that lost the lease fences; a candidate follows the
    /// holder, or tries again at once when the lease is free.
    fn observe(&mut self, now: Time, kind: Kind, view: LeaseView) {
        if self.view.as_ref().is_some_and(|seen| seen.revision > view.revision) {
            return; // older than what we know
        }
        self.view = Some(view.clone());
        if let State::Leading { epoch, .. } = self.state {
            let ours = view.live
                && view.epoch == epoch
                && view.holder.as_ref().is_some_and(|holder| holder.candidate == self.candidate);
            if !ours {
                self.fence(now, epoch);
            }
            return;
        }
        let own = view.holder.as_ref().is_some_and(|holder| holder.candidate == self.candidate);
        if view.live && !own {
            let leader = view.holder.as_ref().map(|holder| (holder.address.clone(), view.epoch));
            self.set_role(LeaderRole::Standby { leader });
        } else if !view.live && kind == Kind::Acquire {
            self.request_acquire(now); // free: the refusal was a stale revision
        }
        // Live and ours but of a grant we forgot: it expires, and we campaign again then.
    }

    /// Stops leading in `epoch` and campaigns again after a renew interval.
    fn fence(&mut self, now: Time, epoch: Epoch) {
        self.state = State::Candidate { next_attempt_at: now.after(self.timing.renew_interval) };
        self.in_flight.retain(|_, (_, kind)| *kind == Kind::Acquire);
        self.set_role(LeaderRole::Fenced { epoch });
    }

    /// Gives the lease up (a clean shutdown): stops acting now and asks the store to release.
    pub fn resign(&mut self, now: Time) {
        if let State::Leading { epoch, .. } = self.state {
            self.fence(now, epoch);
            let request = self.next_request(now, None);
            let candidate = self.candidate.clone();
            self.outputs.push_back(ElectionOutput::Store(StoreRequest::Release { request, candidate, epoch }));
        }
    }

    fn request_acquire(&mut self, now: Time) {
        let request = self.next_request(now, Some(Kind::Acquire));
        let expected_revision = self.view.as_ref().map_or(0, |view| view.revision);
        self.outputs.push_back(ElectionOutput::Store(StoreRequest::Acquire {
            request,
            candidate: self.candidate.clone(),
            address: self.address.clone(),
            ttl: self.timing.lease,
            expected_revision,
        }));
    }

    fn request_renew(&mut self, now: Time, epoch: Epoch) {
        let request = self.next_request(now, Some(Kind::Renew));
        let (candidate, ttl) = (self.candidate.clone(), self.timing.lease);
        self.outputs.push_back(ElectionOutput::Store(StoreRequest::Renew { request, candidate, epoch, ttl }));
    }

    /// A fresh request id, remembered with its send time when it expects an answer.
    fn next_request(&mut self, now: Time, kind: Option<Kind>) -> RequestId {
        let request = self.request_next;
        self.request_next += 1;
        if let Some(kind) = kind {
            if self.in_flight.len() >= IN_FLIGHT_MAX
                && let Some(oldest) = self.in_flight.keys().next().copied()
            {
                self.in_flight.remove(&oldest);
            }
            self.in_flight.insert(request, (now, kind));
        }
        request
    }

    fn set_role(&mut self, role: LeaderRole) {
        if self.role.as_ref() != Some(&role) {
            self.role = Some(role.clone());
            self.outputs.push_back(ElectionOutput::Role(role));
        }
    }

    /// The election's own invariants.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.in_flight.len() > IN_FLIGHT_MAX {
            return Err(format!("{} requests remembered, at most {IN_FLIGHT_MAX}", self.in_flight.len()));
        }
        if let State::Leading { epoch, .. } = self.state
            && epoch != self.epoch_led
        {
            return Err(format!("leading in {epoch} but the highest epoch led is {}", self.epoch_led));
        }
        Ok(())
    }
}
