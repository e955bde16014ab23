//! The event queue, ordered by (virtual time, sequence number).
//!
//! The heap holds only the keys and the index of the action's slot; the actions (some hundreds
//! of bytes, an envelope inline) wait in a slab whose slots are reused. A heap of whole actions
//! moved each one through every level it rose or sank, which was a tenth of a run's time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use weir_core::time::Time;

/// An action due at a time.
pub(super) struct Due<A> {
    pub at: Time,
    pub sequence: u64,
    /// When it was scheduled (a message's send time), for the timeline.
    pub scheduled_at: Time,
    pub action: A,
}

pub(super) struct EventQueue<A> {
    /// (time, sequence, slot): sequences are unique, so the order is total and never looks at
    /// the slot.
    heap: BinaryHeap<Reverse<(Time, u64, usize)>>,
    slots: Vec<Option<(Time, A)>>,
    free: Vec<usize>,
}

impl<A> EventQueue<A> {
    pub fn new() -> EventQueue<A> {
        EventQueue { heap: BinaryHeap::new(), slots: Vec::new(), free: Vec::new() }
    }

    pub fn push(&mut self, due: Due<A>) {
        let entry = Some((due.scheduled_at, due.action));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = entry;
                slot
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse((due.at, due.sequence, slot)));
    }

    /// The earliest action (the lowest sequence among those due at the same time).
    pub fn pop(&mut self) -> Option<Due<A>> {
        let Reverse((at, sequence, slot)) = self.heap.pop()?;
        let (scheduled_at, action) = self.slots[slot].take().expect("a queued slot holds its action");
        self.free.push(slot);
        Some(Due { at, sequence, scheduled_at, action })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::time::Duration;

    #[test]
    fn pops_in_time_then_sequence_order_and_reuses_slots() {
        let mut queue = EventQueue::new();
        let at = |ms| Time::ZERO.after(Duration::from_millis(ms));
        for (sequence, ms, name) in [(1, 30, "c"), (2, 10, "a"), (3, 30, "d"), (4, 20, "b")] {
            queue.push(Due { at: at(ms), sequence, scheduled_at: Time::ZERO, action: name });
        }
        let first = queue.pop().map(|due| due.action);
        queue.push(Due { at: at(15), sequence: 5, scheduled_at: at(10), action: "a2" });
        let mut order = vec![first.unwrap_or_default()];
        while let Some(due) = queue.pop() {
            order.push(due.action);
        }
        assert_eq!(order, ["a", "a2", "b", "c", "d"]);
        assert_eq!(queue.slots.len(), 4, "the freed slot was reused");
    }
}
