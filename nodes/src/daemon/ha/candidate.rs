//! A JobManager's candidacy: core's [`LeaderElection`] on the process's monotonic clock, its
//! store requests carried out by the [`Service`], its role published to REST's standby gate.
//!
//! The JobManager process campaigns before it has a JobManager. Once granted, it reads the
//! records and only then starts its JobManager in the granted epoch. From then on the control
//! task asks [`Candidacy::check_leading`] before every input it handles: when the election no
//! longer leads in that epoch (a renewal failed or came too late, the store showed another
//! holder) the process exits at once (Flink's JobManager process also ends on leadership loss
//! in standalone mode): nothing of a deposed leader acts any more, and its TaskManagers see
//! the connection close and follow the new leader.

use super::standby::Gate;
use super::{HaAnswer, HaRequest, LeaderAddress, Service};
use weir_core::ha::HaRecords;
use weir_core::ids::Epoch;
use weir_core::leader::{ElectionOutput, ElectionTiming, LeaderElection, LeaderRole};
use weir_core::time::Time;

/// The exit code of a JobManager that lost its leadership.
pub const EXIT_LEADERSHIP_LOST: i32 = 3;

/// What an answer of the store means for the control task.
#[derive(Debug)]
pub enum Step {
    /// Nothing for the JobManager.
    Nothing,
    /// The records are read and this process leads in `epoch`: start the JobManager.
    Lead { epoch: Epoch, records: Box<HaRecords> },
    /// A record write is stored.
    Written(weir_core::ha::HaWrite),
}

/// One JobManager process's election.
pub struct Candidacy {
    /// Who campaigns, as the store knows it.
    candidate: String,
    election: LeaderElection,
    service: Service,
    gate: Gate,
    /// The epoch whose records were asked for.
    reading: Option<Epoch>,
}

impl Candidacy {
    /// Campaigns as `candidate`, reachable at `address`.
    pub fn new(
        candidate: String,
        address: &LeaderAddress,
        timing: ElectionTiming,
        service: Service,
        gate: Gate,
        now: Time,
    ) -> Candidacy {
        let election = LeaderElection::new(candidate.clone(), address.encode(), timing, now);
        Candidacy { candidate, election, service, gate, reading: None }
    }

    /// Who campaigns, as the store knows it.
    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// The next time the election needs a tick.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.election.poll_timeout()
    }

    /// Queues a record write.
    pub fn write(&self, write: weir_core::ha::HaWrite) {
        self.service.send(HaRequest::Write(write));
    }

    /// Time passed.
    pub fn tick(&mut self, now: Time) {
        self.election.handle_tick(now);
        self.pump();
    }

    /// Handles an answer of the store at `now`.
    pub fn answer(&mut self, now: Time, answer: HaAnswer) -> Step {
        match answer {
            HaAnswer::Lease(reply) => {
                self.election.handle_reply(now, reply);
                self.pump();
                Step::Nothing
            }
            HaAnswer::Records { epoch, records } => {
                if self.reading != Some(epoch) || self.election.leading(now) != Some(epoch) {
                    return Step::Nothing; // led too briefly; the next grant reads again
                }
                match records {
                    Ok(records) => Step::Lead { epoch, records: Box::new(records) },
                    Err(error) => {
                        exit_fenced(&format!("cannot read the HA records as leader of epoch {epoch}: {error}"))
                    }
                }
            }
            HaAnswer::Written(write) => Step::Written(write),
            HaAnswer::Stale(stale) => exit_fenced(&format!("the HA store refused a record: {stale}")),
        }
    }

    /// Exits the process unless it still leads in `epoch` at `now`.
    pub fn check_leading(&mut self, now: Time, epoch: Epoch) {
        self.tick(now);
        if self.election.leading(now) != Some(epoch) {
            exit_fenced(&format!("lost the leadership of epoch {epoch} (the lease could not be renewed in time)"));
        }
    }

    /// Carries out the election's outputs.
    fn pump(&mut self) {
        while let Some(output) = self.election.poll_output() {
            match output {
                ElectionOutput::Store(request) => self.service.send(HaRequest::Lease(request)),
                ElectionOutput::Role(LeaderRole::Leading { epoch }) => {
                    tracing::info!(%epoch, "won the leader lease; reading the HA records");
                    self.reading = Some(epoch);
                    self.service.send(HaRequest::Records { epoch });
                }
                ElectionOutput::Role(LeaderRole::Standby { leader }) => {
                    let leader = leader.and_then(|(address, epoch)| {
                        LeaderAddress::parse(&address).map(|address| (address.rest, epoch))
                    });
                    if let Some((rest, epoch)) = &leader {
                        tracing::info!(leader = %rest, %epoch, "standby: another JobManager leads");
                    }
                    self.gate.follow(leader.map(|(rest, _)| rest));
                }
                ElectionOutput::Role(LeaderRole::Fenced { epoch }) => {
                    self.reading = None;
                    tracing::warn!(%epoch, "the election fenced this candidate");
                }
            }
        }
    }

    /// The REST gate, opened once the JobManager runs.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }
}

/// Ends the process: a JobManager that may no longer lead must stop acting at once.
pub fn exit_fenced(reason: &str) -> ! {
    tracing::error!("{reason}; this JobManager stops now (exit code {EXIT_LEADERSHIP_LOST})");
    eprintln!("JobManager lost its leadership: {reason}; exiting");
    std::process::exit(EXIT_LEADERSHIP_LOST)
}
