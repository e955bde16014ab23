//! A task's snapshot as a checkpoint state file, and back.
//!
//! The chain's snapshot ([`ChainSnapshot`]: per operator keyed state by key group, items and
//! scalars) maps onto the file format of [`storage`] (per operator `operator_state`,
//! `channel_state` and keyed state by key group) as follows:
//! - `keyed`: the key groups' bytes, unchanged, so a rescale can split the file by key group;
//! - `operator_state`: an [`OperatorImage`] (bincode) with the items, the scalars, whether the
//!   operator has keyed state with its key-group range, and the parallelism it was taken at;
//! - `channel_state`: on the chain's head only, a [`ChannelState`] (bincode): the in-flight
//!   records of an unaligned checkpoint, and whether the task's input had already ended (its
//!   chain's `end_of_input` ran, so a restored task must not run it again). Empty when there is
//!   neither.
//!
//! Operators whose snapshot is empty are left out; a restore starts them empty. Decoding checks
//! the frame (storage), then that the file is this subtask's, that every operator belongs to the
//! chain, and that each image decodes; every failure is a typed [`RestoreError`].

use crate::checkpoint::storage::{self, StorageError, TaskStateFile};
use crate::dataflow::operators::{ChainSnapshot, OperatorError, OperatorSnapshot};
use crate::dataflow::state::{KeyGroupRange, KeyGroupSnapshot, KeyedSnapshot, decode_exact, encode_to_vec};
use crate::ids::{AttemptNumber, JobId, OperatorIndex, SubtaskIndex, VertexId};
use crate::row::Row;
use serde::{Deserialize, Serialize};

/// A state file that cannot be restored, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RestoreError {
    /// The file's frame or payload is corrupt.
    #[error("state file: {0}")]
    Storage(#[from] StorageError),
    /// The file belongs to another subtask or vertex.
    #[error("the state file is of vertex {found_vertex} subtask {found_subtask}, not {vertex} subtask {subtask}")]
    WrongTask {
        /// This task's vertex.
        vertex: VertexId,
        /// This task's subtask.
        subtask: SubtaskIndex,
        /// The file's vertex.
        found_vertex: VertexId,
        /// The file's subtask.
        found_subtask: SubtaskIndex,
    },
    /// The file holds state of an operator that is not in this chain.
    #[error("the state file holds operator {operator}, which this chain does not have")]
    UnknownOperator {
        /// The operator.
        operator: OperatorIndex,
    },
    /// One operator's part does not decode.
    #[error("operator {operator}: {what} does not decode: {message}")]
    Undecodable {
        /// The operator.
        operator: OperatorIndex,
        /// Which part.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The operators of one state file disagree on the parallelism it was taken at, or name a
    /// parallelism its subtask does not fit.
    #[error("operator {operator}: state of parallelism {found} is inconsistent (the vertex now runs at {parallelism})")]
    Rescaled {
        /// The operator.
        operator: OperatorIndex,
        /// The parallelism now.
        parallelism: u32,
        /// The parallelism of the state.
        found: u32,
    },
    /// The state files of a change of parallelism cannot be combined.
    #[error("rescaling: {0}")]
    Rescale(String),
    /// State files were given for a subtask deployed as finished, which has none.
    #[error("state files for a subtask that had finished")]
    FinishedWithState,
    /// An operator refused its restored state.
    #[error("{0}")]
    Operator(#[from] OperatorError),
}

/// One operator's non-keyed state in a file (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OperatorImage {
    parallelism: u32,
    items: Vec<Vec<u8>>,
    scalars: Option<Vec<u8>>,
    /// `(max parallelism, key-group range)` when the operator has keyed state.
    keyed: Option<(u32, KeyGroupRange)>,
}

/// The task's own part of a snapshot, kept as the head's channel state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct ChannelState {
    /// The chain's input had ended when the snapshot was taken.
    pub(super) input_ended: bool,
    /// Records of an unaligned checkpoint still before the barrier: (chain input, record).
    pub(super) in_flight: Vec<(u32, Row)>,
}

impl ChannelState {
    fn is_empty(&self) -> bool {
        !self.input_ended && self.in_flight.is_empty()
    }
}

/// Who the task is, as its state files record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TaskIdentity {
    pub(super) job: JobId,
    pub(super) vertex: VertexId,
    pub(super) subtask: SubtaskIndex,
    pub(super) attempt: AttemptNumber,
    pub(super) parallelism: u32,
    /// The chain's operators, head first (the order of [`ChainSnapshot::operators`]).
    pub(super) operators: Vec<OperatorIndex>,
    /// Their uids, in the same order.
    pub(super) uids: Vec<String>,
}

/// The bytes of the state file of `snapshot` with `channel` as the head's channel state.
pub(super) fn encode(
    identity: &TaskIdentity,
    snapshot: ChainSnapshot,
    channel: &ChannelState,
) -> Result<Vec<u8>, String> {
    assert_eq!(snapshot.operators.len(), identity.operators.len(), "one snapshot per chained operator");
    let mut operators = Vec::with_capacity(snapshot.operators.len());
    for (position, (_uid, state)) in snapshot.operators.into_iter().enumerate() {
        let channel_state = match position == 0 && !channel.is_empty() {
            true => encode_to_vec(channel)?,
            false => Vec::new(),
        };
        if state == OperatorSnapshot::default() && channel_state.is_empty() {
            continue;
        }
        let (keyed_meta, keyed, native) = match state.keyed {
            Some(keyed) => (
                Some((keyed.max_parallelism, keyed.key_group_range)),
                keyed.groups.into_iter().map(|group| (group.key_group, group.bytes)).collect(),
                keyed.native,
            ),
            None => (None, Vec::new(), None),
        };
        let image = OperatorImage {
            parallelism: identity.parallelism,
            items: state.items,
            scalars: state.scalars,
            keyed: keyed_meta,
        };
        let operator = identity.operators[position];
        operators.push(storage::OperatorSnapshot {
            operator,
            operator_state: encode_to_vec(&image)?,
            channel_state,
            keyed,
            native,
        });
    }
    operators.sort_by_key(|operator| operator.operator);
    let file = TaskStateFile {
        job: identity.job,
        checkpoint: snapshot.checkpoint,
        vertex: identity.vertex,
        subtask: identity.subtask,
        attempt: identity.attempt,
        operators,
    };
    Ok(storage::encode_task_state(&file))
}

/// The shared files the chain snapshot references (for its handle's reference counts), sorted.
pub(super) fn shared_files(snapshot: &ChainSnapshot) -> Vec<String> {
    let keyed = snapshot.operators.iter().filter_map(|(_, state)| state.keyed.as_ref());
    let native = keyed.filter_map(|keyed| keyed.native.as_ref());
    let mut names: Vec<String> =
        native.flat_map(|native| native.shared.iter().map(|file| file.shared.clone())).collect();
    names.sort();
    names.dedup();
    names
}

/// The chain snapshot and channel state in the state file `bytes` of this task, or after a
/// change of parallelism of another (old) subtask of its vertex: the snapshot names the subtask
/// and the parallelism it was taken at.
pub(super) fn decode(identity: &TaskIdentity, bytes: &[u8]) -> Result<(ChainSnapshot, ChannelState), RestoreError> {
    let file = storage::decode_task_state(bytes)?;
    let wrong_task = || RestoreError::WrongTask {
        vertex: identity.vertex,
        subtask: identity.subtask,
        found_vertex: file.vertex,
        found_subtask: file.subtask,
    };
    if file.vertex != identity.vertex {
        return Err(wrong_task());
    }
    let mut old_parallelism = None;
    let mut states = vec![OperatorSnapshot::default(); identity.operators.len()];
    let mut present = vec![false; identity.operators.len()];
    let mut channel = ChannelState::default();
    for part in file.operators {
        let operator = part.operator;
        let Some(position) = identity.operators.iter().position(|&own| own == operator) else {
            return Err(RestoreError::UnknownOperator { operator });
        };
        let undecodable =
            |what: &'static str| move |message: String| RestoreError::Undecodable { operator, what, message };
        if !part.channel_state.is_empty() {
            if position != 0 {
                return Err(undecodable("channel state")("only the chain's head has channel state".to_string()));
            }
            channel = decode_exact(&part.channel_state).map_err(undecodable("channel state"))?;
        }
        let image: OperatorImage = decode_exact(&part.operator_state).map_err(undecodable("operator state"))?;
        if old_parallelism.is_some_and(|old| old != image.parallelism) || image.parallelism <= file.subtask.0 {
            let found = image.parallelism;
            return Err(RestoreError::Rescaled { operator, parallelism: identity.parallelism, found });
        }
        old_parallelism = Some(image.parallelism);
        let keyed = match image.keyed {
            Some((max_parallelism, key_group_range)) => {
                let groups = part.keyed.into_iter().map(|(key_group, bytes)| KeyGroupSnapshot { key_group, bytes });
                let native = part.native;
                Some(KeyedSnapshot { max_parallelism, key_group_range, groups: groups.collect(), native })
            }
            None if part.keyed.is_empty() && part.native.is_none() => None,
            None => return Err(undecodable("keyed state")("key groups of an operator without keyed state".into())),
        };
        states[position] = OperatorSnapshot { keyed, items: image.items, scalars: image.scalars };
        present[position] = true;
    }
    let operators = identity.uids.iter().zip(states).zip(present);
    let operators = operators.filter(|(_, present)| *present).map(|((uid, state), _)| (uid.clone(), state));
    // A file without operators holds nothing; its parallelism does not matter.
    let parallelism = old_parallelism.unwrap_or(identity.parallelism);
    if parallelism == identity.parallelism && file.subtask != identity.subtask && old_parallelism.is_some() {
        return Err(wrong_task()); // at the same parallelism a subtask reads its own file only
    }
    let snapshot = ChainSnapshot {
        checkpoint: file.checkpoint,
        subtask: file.subtask,
        parallelism,
        operators: operators.collect(),
    };
    Ok((snapshot, channel))
}
