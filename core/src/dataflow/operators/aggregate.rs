//! Keyed running aggregation (`aggregate`), and the keyed-state pieces it shares with windows:
//! key selection per input and the codec of accumulators.
//!
//! For every record the operator folds the row into its key's accumulators (keyed state,
//! namespace [`Namespace::Global`]) and emits the key followed by every aggregate's current
//! result, as Flink's keyed `sum`/`reduce` do.

use super::{Collector, Operator, OperatorContext, OperatorError, OperatorSnapshot, RestoredState};
use crate::dataflow::state::{
    HeapKeyedStateBackend, KeyedStateBackend, Namespace, StateCodec, StateError, ValueState, decode_exact, encode_into,
};
use crate::expr::{Accumulator, AccumulatorState, AggregateSpec, Expr};
use crate::ids::CheckpointId;
use crate::row::{Row, Value};

/// Codec of one accumulator per aggregate: stores only their states, restored against the specs.
pub(crate) struct AccumulatorsCodec {
    pub(crate) specs: Vec<AggregateSpec>,
}

impl AccumulatorsCodec {
    /// Appends the states of `accumulators` to `out`.
    pub(crate) fn encode_states(accumulators: &[Accumulator], out: &mut Vec<u8>) -> Result<(), StateError> {
        let states: Vec<AccumulatorState> = accumulators.iter().map(Accumulator::state).collect();
        encode_into(&states, out).map_err(|message| StateError::Codec { message })
    }

    /// Accumulators of the specs continuing from `states`.
    pub(crate) fn restore_states(&self, states: Vec<AccumulatorState>) -> Result<Vec<Accumulator>, StateError> {
        if states.len() != self.specs.len() {
            let message = format!("{} accumulators for {} aggregates", states.len(), self.specs.len());
            return Err(StateError::Codec { message });
        }
        let restore = |(spec, state)| Accumulator::restore(spec, state);
        let accumulators = self.specs.iter().zip(states).map(restore).collect::<Result<Vec<_>, _>>();
        accumulators.map_err(|error| StateError::Codec { message: error.to_string() })
    }

    /// Fresh accumulators, one per spec.
    pub(crate) fn fresh(specs: &[AggregateSpec]) -> Vec<Accumulator> {
        specs.iter().map(Accumulator::new).collect()
    }
}

impl StateCodec<Vec<Accumulator>> for AccumulatorsCodec {
    fn encode(&self, accumulators: &Vec<Accumulator>, out: &mut Vec<u8>) -> Result<(), StateError> {
        AccumulatorsCodec::encode_states(accumulators, out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Vec<Accumulator>, StateError> {
        let states: Vec<AccumulatorState> = decode_exact(bytes).map_err(|message| StateError::Codec { message })?;
        self.restore_states(states)
    }
}

/// Evaluates the key of a record from input `input` of the chain.
pub(crate) fn key_of(
    context: &OperatorContext,
    keys: &[Expr],
    input: usize,
    row: &[Value],
) -> Result<Value, OperatorError> {
    let key = keys.get(input).unwrap_or_else(|| panic!("input {input} of {} keyed inputs", keys.len()));
    key.eval(row).map_err(|error| context.error(error))
}

/// A running keyed aggregation: emits the key and the updated aggregates for every record.
pub(crate) struct RunningAggregate {
    context: OperatorContext,
    keys: Vec<Expr>,
    specs: Vec<AggregateSpec>,
    backend: HeapKeyedStateBackend,
    accumulators: ValueState<Vec<Accumulator>>,
    output: Row,
}

impl RunningAggregate {
    pub(crate) fn new(context: OperatorContext, specs: Vec<AggregateSpec>, keys: Vec<Expr>) -> RunningAggregate {
        let mut backend = HeapKeyedStateBackend::new(context.max_parallelism, context.key_group_range());
        let accumulators = backend.register_value("accumulators", AccumulatorsCodec { specs: specs.clone() });
        let output = vec![Value::Null; 1 + specs.len()];
        RunningAggregate { context, keys, specs, backend, accumulators, output }
    }
}

impl Operator for RunningAggregate {
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.process_input(0, row, out)
    }

    fn process_input(&mut self, input: usize, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        let key = key_of(&self.context, &self.keys, input, row)?;
        self.backend.set_current_key(key).map_err(|error| self.context.error(error))?;
        let specs = &self.specs;
        let accumulators =
            self.backend.value_or_init(self.accumulators, Namespace::Global, || AccumulatorsCodec::fresh(specs));
        for (slot, accumulator) in self.output[1..].iter_mut().zip(accumulators.iter_mut()) {
            accumulator.add(row).map_err(|error| self.context.error(error))?;
            *slot = accumulator.result();
        }
        self.output[0] = self.backend.current_key().clone();
        out.collect(&self.output)
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let keyed = self.backend.snapshot().map_err(|error| self.context.error(error))?;
        Ok(OperatorSnapshot { keyed: Some(keyed), items: Vec::new(), scalars: None })
    }

    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        self.backend.restore(&state.keyed).map_err(|error| self.context.error(error))
    }
}
