//! Collecting a run's timeline (`weir sim replay --html`): messages, buffers, faults, job and
//! checkpoint states, as the run processes them.

use super::{Action, CLIENT_NODE, NodeIndex, World, node_name};
use crate::timeline::{EVENTS_MAX, Timeline, TimelineEvent};
use weir_core::protocol::Event;
use weir_core::time::Time;

impl World<'_> {
    fn push_timeline(&mut self, event: TimelineEvent) {
        let Some(timeline) = &mut self.timeline else { return };
        if timeline.len() < EVENTS_MAX {
            timeline.push(event);
        } else {
            self.timeline_dropped += 1;
        }
    }

    /// A message or buffer about to be delivered, sent at `sent`.
    pub(super) fn note_action(&mut self, action: &Action, sent: Time) {
        if self.timeline.is_none() {
            return;
        }
        let (event, at) = (self.events, self.now.0);
        let noted = match action {
            Action::Deliver { from, to, envelope } if *from != CLIENT_NODE && *to != CLIENT_NODE => {
                let label = format!("{} {} -> {}", envelope.message.kind(), self.name(*from), self.name(*to));
                Some((*from, *to, "message", label, format!("{:#?}", envelope.message)))
            }
            Action::Data { from, to, packet } if from != to => {
                let label = format!("buffer {} -> {}", packet.producer, packet.consumer);
                Some((
                    *from,
                    *to,
                    "data",
                    label,
                    format!("{} bytes on edge {}", packet.buffer.len_bytes(), packet.edge),
                ))
            }
            _ => None,
        };
        if let Some((from, to, kind, label, detail)) = noted {
            let mut entry = TimelineEvent::new(event, at, kind, label, detail);
            entry.sent_us = Some(sent.0);
            entry.from = Some(self.name(from));
            entry.node = Some(self.name(to));
            self.push_timeline(entry);
        }
    }

    /// Faults that fired in this event (the newest `count` lines of the fault log).
    pub(super) fn note_faults(&mut self, since: usize) {
        if self.timeline.is_none() || self.faults_fired.len() <= since {
            return;
        }
        let lines: Vec<String> = self.faults_fired[since..].to_vec();
        for line in lines {
            let node = line
                .split([' ', ',', '|', ':'])
                .find(|word| self.nodes.iter().any(|node| node.name == *word))
                .map(String::from);
            let mut entry = TimelineEvent::new(self.events, self.now.0, "fault", line.clone(), line);
            entry.node = node;
            self.push_timeline(entry);
        }
    }

    /// A state machine's event: job statuses, checkpoints, task states.
    pub(super) fn note_event(&mut self, node: NodeIndex, event: &Event) {
        if self.timeline.is_none() {
            return;
        }
        let (kind, job, state, label) = match event {
            Event::JobStatusChanged { job_id, from, to } => {
                ("job", Some(*job_id), Some(to.name().to_string()), format!("job {job_id}: {from} -> {to}"))
            }
            Event::ExecutionStateChanged { execution, from, to } => {
                ("task", None, Some(to.to_string()), format!("{execution}: {from} -> {to}"))
            }
            Event::CheckpointCompleted { job_id, checkpoint, .. } => {
                ("checkpoint", Some(*job_id), None, format!("checkpoint {checkpoint} completed"))
            }
            Event::CheckpointFailed { job_id, checkpoint, reason } => {
                ("checkpoint", Some(*job_id), None, format!("checkpoint {checkpoint} failed: {reason}"))
            }
            Event::CheckpointDropped { job_id, checkpoint, reason } => {
                ("checkpoint", Some(*job_id), None, format!("checkpoint {checkpoint} dropped: {reason}"))
            }
            _ => return,
        };
        let mut entry = TimelineEvent::new(self.events, self.now.0, kind, label, format!("{event:#?}"));
        entry.node = Some(self.name(node));
        entry.job = job.map(|job| job.to_string());
        entry.state = state;
        self.push_timeline(entry);
    }

    fn name(&self, node: NodeIndex) -> String {
        node_name(&self.nodes, node).to_string()
    }

    /// The timeline collected, with the run's outcome.
    pub(super) fn take_timeline(&mut self, report: &crate::RunReport) -> Timeline {
        let mut problems: Vec<String> = report
            .violations
            .iter()
            .map(|violation| format!("violated at event {}: {}", violation.event, violation.message))
            .collect();
        problems.extend(report.unmet.iter().map(|unmet| format!("unmet: {unmet}")));
        Timeline {
            scenario: report.scenario.clone(),
            seed: report.seed,
            nodes: self.nodes.iter().map(|node| node.name.clone()).collect(),
            events: self.timeline.take().unwrap_or_default(),
            dropped: self.timeline_dropped,
            end_us: self.now.0,
            passed: report.passed(),
            problems,
        }
    }
}
