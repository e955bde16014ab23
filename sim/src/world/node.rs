//! A node of the simulated cluster, and which nodes an event touched.
//!
//! A role's `check_invariants` reads only the role's own state (it takes `&self` and no time),
//! and so does the election's. The state of a node's machine and election changes only through
//! a `&mut` borrow, and the only ways to one are [`Node::machine_mut`], [`Node::set_machine`],
//! [`Node::ha_mut`], [`Node::set_ha`] and [`Node::clocks_mut`] (the fields are private to this
//! module): each marks the node touched. So a node not touched since its last check still
//! passes it, and checking only touched nodes after an event checks every invariant after every
//! event that could break it (`World::check`).

use super::Machine;
use super::ha;
use crate::network::NodeIndex;
use weir_core::ids::{Epoch, ResourceId};
use weir_core::protocol::Role;
use weir_core::time::Time;

pub(super) struct Node {
    pub(super) name: String,
    machine: Machine,
    pub(super) incarnation: u32,
    /// The earliest wake-up already scheduled, to avoid scheduling duplicates.
    pub(super) wake_at: Option<Time>,
    pub(super) resource_id: Option<ResourceId>,
    /// A JobManager's candidacy (highly available clusters).
    ha: Option<ha::HaSide>,
    /// The leader a TaskManager found through the store, and its epoch.
    pub(super) leader: Option<(NodeIndex, Epoch)>,
    /// Paused (stopped) until then.
    pub(super) paused_until: Option<Time>,
    /// What a paused node's interrupted step sends when it wakes.
    pub(super) held: Option<Vec<ha::Held>>,
    /// The clock its state machine reads (exact unless clocks drift or a clock fault hit it).
    pub(super) clock: crate::clock::Clock,
    /// The machine or the election may have changed since the node's invariants were checked.
    touched: bool,
}

impl Node {
    pub(super) fn new(name: String) -> Node {
        Node {
            name,
            machine: Machine::Down,
            incarnation: 0,
            wake_at: None,
            resource_id: None,
            ha: None,
            leader: None,
            paused_until: None,
            held: None,
            clock: crate::clock::Clock::default(),
            touched: true,
        }
    }

    pub(super) fn machine(&self) -> &Machine {
        &self.machine
    }

    /// The machine, to change: the node's invariants are checked after this event.
    pub(super) fn machine_mut(&mut self) -> &mut Machine {
        self.touched = true;
        &mut self.machine
    }

    pub(super) fn set_machine(&mut self, machine: Machine) {
        self.touched = true;
        self.machine = machine;
    }

    pub(super) fn ha(&self) -> Option<&ha::HaSide> {
        self.ha.as_ref()
    }

    /// The candidacy, to change: the node's invariants are checked after this event.
    pub(super) fn ha_mut(&mut self) -> Option<&mut ha::HaSide> {
        self.touched |= self.ha.is_some();
        self.ha.as_mut()
    }

    pub(super) fn set_ha(&mut self, ha: ha::HaSide) {
        self.touched = true;
        self.ha = Some(ha);
    }

    /// The state machine's clock and the election's, to change (a clock fault).
    pub(super) fn clocks_mut(&mut self) -> [Option<&mut crate::clock::Clock>; 2] {
        self.touched = true;
        [Some(&mut self.clock), self.ha.as_mut().map(|ha| &mut ha.clock)]
    }

    /// Whether the node was touched since the last call (which clears it).
    pub(super) fn take_touched(&mut self) -> bool {
        std::mem::replace(&mut self.touched, false)
    }

    /// The node's invariants, as of its last check: the machine's (a JobManager checks only
    /// the roles an input reached since, and forgets them; that changes nothing a check reads,
    /// so it does not touch the node), then the election's.
    pub(super) fn check_invariants(&mut self) -> Result<(), String> {
        match &mut self.machine {
            Machine::JobManager(job_manager) => job_manager.check_reached_invariants(),
            Machine::TaskManager(task_executor) => task_executor.check_invariants(),
            _ => Ok(()),
        }?;
        self.ha.as_ref().map_or(Ok(()), |ha| ha.election.check_invariants())
    }

    /// The node's whole state, readable.
    pub(super) fn describe(&self) -> String {
        match &self.machine {
            Machine::JobManager(job_manager) => format!("{job_manager:#?}"),
            Machine::TaskManager(task_executor) => format!("{task_executor:#?}"),
            Machine::Standby => format!("standby {:#?}", self.ha),
            Machine::Store(store) => format!("{store:#?}"),
            Machine::Down => "down".to_string(),
        }
    }
}
