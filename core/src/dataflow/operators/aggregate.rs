//! Keyed running aggregation (`aggregate`), and the pieces it shares with windows: key
//! selection per input and the aggregates' running values.
//!
//! For every record the operator folds the row into its key's aggregates (keyed state,
//! namespace [`Namespace::Global`]) and emits the key followed by every aggregate's current
//! result, as Flink's keyed `sum`/`reduce` do.
//!
//! Running values ([`Slot`]) compute `count()`, `sum(e)` and `avg(e)` inline, reading a
//! plain field argument in place, and hand every other aggregate to `expr`'s
//! [`Accumulator`]. The inline ones follow `expr::aggregate` to the letter (null skipping,
//! int sums that stay ints and overflow as errors, floats once a float is added, the same
//! errors); `inline_slots_match_expr_accumulators` in the tests proves it on random input.

use super::{Collector, Operator, OperatorContext, OperatorError, OperatorSnapshot, RestoredState};
use crate::dataflow::state::{
    KeyedStateBackend, Namespace, StateCodec, StateError, ValueState, decode_exact, encode_into,
};
use crate::expr::{Accumulator, AccumulatorState, AggregateKind, AggregateSpec, EvalError, Expr};
use crate::ids::CheckpointId;
use crate::row::{Row, Type, Value};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Where a value comes from: a field read in place, or an expression.
#[derive(Clone, Debug)]
pub(crate) enum Selector {
    Field(usize),
    Expr(Expr),
}

impl Selector {
    pub(crate) fn new(expr: &Expr) -> Selector {
        match expr.field() {
            Some(position) => Selector::Field(position),
            None => Selector::Expr(expr.clone()),
        }
    }

    #[inline]
    pub(crate) fn select<'a>(&self, row: &'a [Value]) -> Result<Cow<'a, Value>, EvalError> {
        match self {
            Selector::Field(position) => Ok(Cow::Borrowed(row.get(*position).unwrap_or(&Value::Null))),
            Selector::Expr(expr) => expr.eval(row).map(Cow::Owned),
        }
    }
}

/// The running value of one aggregate over one group of rows.
#[derive(Clone, Debug)]
pub(crate) enum Slot {
    Count(i64),
    /// A sum of ints so far.
    SumInt(i64),
    /// A sum once a float was added (or of a float expression).
    SumFloat(f64),
    Avg {
        sum: f64,
        count: i64,
    },
    /// Boxed so that the inline slots stay small.
    Other(Box<Accumulator>),
}

/// Slots kept inline, without an allocation of their own (one pointer less per record).
const INLINE_SLOTS: usize = 2;

/// The running values of one group, one per aggregate: inline for up to [`INLINE_SLOTS`].
#[derive(Clone, Debug)]
pub(crate) enum Slots {
    Inline { len: u8, slots: [Slot; INLINE_SLOTS] },
    Heap(Vec<Slot>),
}

impl Slots {
    fn from_vec(mut slots: Vec<Slot>) -> Slots {
        if slots.len() > INLINE_SLOTS {
            return Slots::Heap(slots);
        }
        let len = slots.len() as u8;
        let mut inline = [Slot::Count(0), Slot::Count(0)];
        for (target, slot) in inline.iter_mut().zip(slots.drain(..)) {
            *target = slot;
        }
        Slots::Inline { len, slots: inline }
    }
}

impl std::ops::Deref for Slots {
    type Target = [Slot];

    #[inline]
    fn deref(&self) -> &[Slot] {
        match self {
            Slots::Inline { len, slots } => &slots[..*len as usize],
            Slots::Heap(slots) => slots,
        }
    }
}

impl std::ops::DerefMut for Slots {
    #[inline]
    fn deref_mut(&mut self) -> &mut [Slot] {
        match self {
            Slots::Inline { len, slots } => &mut slots[..*len as usize],
            Slots::Heap(slots) => slots,
        }
    }
}

/// How a slot is stored in a snapshot.
#[derive(Serialize, Deserialize)]
enum SlotImage {
    Count(i64),
    Sum(Value),
    Avg { sum: f64, count: i64 },
    Other(AccumulatorState),
}

/// The aggregates of a window or a running aggregation.
#[derive(Clone, Debug)]
pub(crate) struct Aggregates {
    specs: Vec<AggregateSpec>,
    args: Vec<Option<Selector>>,
}

fn overflow(op: &'static str) -> EvalError {
    EvalError::Overflow { op }
}

fn not_a_number(aggregate: &'static str, value: &Value) -> EvalError {
    EvalError::Argument { function: aggregate, index: 1, expected: "a number", found: value.ty() }
}

impl Slot {
    /// Adds a number to a sum as `sum(e)` does: ints stay ints (overflow is an error), a float
    /// makes the sum a float.
    #[inline]
    fn add_to_sum(&mut self, value: &Value) -> Result<(), EvalError> {
        match (&mut *self, value) {
            (Slot::SumInt(sum), Value::Int(x)) => *sum = sum.checked_add(*x).ok_or(overflow("sum"))?,
            (Slot::SumInt(sum), Value::Float(x)) => *self = Slot::SumFloat(*sum as f64 + x),
            (Slot::SumFloat(sum), Value::Int(x)) => *sum += *x as f64,
            (Slot::SumFloat(sum), Value::Float(x)) => *sum += x,
            (_, other) => return Err(not_a_number("sum", other)),
        }
        Ok(())
    }
}

impl Slot {
    #[inline(always)]
    fn add(&mut self, arg: Option<&Selector>, row: &[Value]) -> Result<(), EvalError> {
        match (self, arg) {
            (Slot::Count(count), _) => {
                *count = count.checked_add(1).ok_or(overflow("count"))?;
                Ok(())
            }
            (Slot::Other(accumulator), _) => accumulator.add(row),
            // A field is read in place: no copy, no `Cow` through memory on the per-record path.
            (slot, Some(Selector::Field(position))) => slot.add_value(row.get(*position).unwrap_or(&Value::Null)),
            (slot, Some(Selector::Expr(expr))) => slot.add_value(&expr.eval(row)?),
            (_, None) => unreachable!("sum and avg take an argument"),
        }
    }

    /// Adds one argument value to a sum or an average; `null` is skipped.
    #[inline]
    fn add_value(&mut self, value: &Value) -> Result<(), EvalError> {
        match (self, value) {
            (_, Value::Null) => Ok(()),
            (slot @ (Slot::SumInt(_) | Slot::SumFloat(_)), value) => slot.add_to_sum(value),
            (Slot::Avg { sum, count }, value) => {
                let next_count = count.checked_add(1).ok_or(overflow("avg"))?;
                *sum += match value {
                    Value::Int(x) => *x as f64,
                    Value::Float(x) => *x,
                    other => return Err(not_a_number("avg", other)),
                };
                *count = next_count;
                Ok(())
            }
            (Slot::Count(_) | Slot::Other(_), _) => unreachable!("count and other aggregates take whole rows"),
        }
    }

    fn merge(&mut self, other: &Slot) -> Result<(), EvalError> {
        match (self, other) {
            (Slot::Count(a), Slot::Count(b)) => *a = a.checked_add(*b).ok_or(overflow("count"))?,
            (a @ (Slot::SumInt(_) | Slot::SumFloat(_)), Slot::SumInt(b)) => a.add_to_sum(&Value::Int(*b))?,
            (a @ (Slot::SumInt(_) | Slot::SumFloat(_)), Slot::SumFloat(b)) => a.add_to_sum(&Value::Float(*b))?,
            (Slot::Avg { sum, count }, Slot::Avg { sum: other_sum, count: other_count }) => {
                let merged = count.checked_add(*other_count).ok_or(overflow("avg"))?;
                (*sum, *count) = (*sum + other_sum, merged);
            }
            (Slot::Other(a), Slot::Other(b)) => a.merge(b)?,
            (slot, _) => return Err(EvalError::StateMismatch { expected: slot.name(), found: "another aggregate" }),
        }
        Ok(())
    }

    fn result(&self) -> Value {
        match self {
            Slot::Count(count) => Value::Int(*count),
            Slot::SumInt(sum) => Value::Int(*sum),
            Slot::SumFloat(sum) => Value::Float(*sum),
            Slot::Avg { count: 0, .. } => Value::Null,
            Slot::Avg { sum, count } => Value::Float(sum / *count as f64),
            Slot::Other(accumulator) => accumulator.result(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Slot::Count(_) => "count",
            Slot::SumInt(_) | Slot::SumFloat(_) => "sum",
            Slot::Avg { .. } => "avg",
            Slot::Other(accumulator) => accumulator.spec().kind().name(),
        }
    }
}

impl Aggregates {
    pub(crate) fn new(specs: Vec<AggregateSpec>) -> Aggregates {
        let args = specs.iter().map(|spec| spec.arg().map(Selector::new)).collect();
        Aggregates { specs, args }
    }

    /// Number of aggregates.
    pub(crate) fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether partial values can be merged (session windows).
    pub(crate) fn can_merge(&self) -> bool {
        self.specs.iter().all(AggregateSpec::can_merge)
    }

    fn fresh_slot(spec: &AggregateSpec) -> Slot {
        match spec.kind() {
            AggregateKind::Count => Slot::Count(0),
            AggregateKind::Sum if spec.ty() == Type::Float => Slot::SumFloat(0.0),
            AggregateKind::Sum => Slot::SumInt(0),
            AggregateKind::Avg => Slot::Avg { sum: 0.0, count: 0 },
            _ => Slot::Other(Box::new(Accumulator::new(spec))),
        }
    }

    /// Empty running values, one per aggregate.
    pub(crate) fn fresh(&self) -> Slots {
        Slots::from_vec(self.specs.iter().map(Aggregates::fresh_slot).collect())
    }

    /// Folds `row` into `slots`.
    #[inline(always)]
    pub(crate) fn add(&self, slots: &mut [Slot], row: &[Value]) -> Result<(), EvalError> {
        for (slot, arg) in slots.iter_mut().zip(&self.args) {
            slot.add(arg.as_ref(), row)?;
        }
        Ok(())
    }

    /// Folds the partial values `other` into `slots`.
    pub(crate) fn merge(&self, slots: &mut [Slot], other: &[Slot]) -> Result<(), EvalError> {
        for (slot, other) in slots.iter_mut().zip(other) {
            slot.merge(other)?;
        }
        Ok(())
    }

    /// Writes each aggregate's result into `out`.
    pub(crate) fn results(&self, slots: &[Slot], out: &mut [Value]) {
        for (target, slot) in out.iter_mut().zip(slots) {
            *target = slot.result();
        }
    }

    /// The results of folding `rows` in order into fresh values.
    pub(crate) fn fold(&self, rows: &[Row], out: &mut [Value]) -> Result<(), EvalError> {
        let mut slots = self.fresh();
        for row in rows {
            self.add(&mut slots, row)?;
        }
        self.results(&slots, out);
        Ok(())
    }

    /// Appends the slots' encoding to `out`.
    pub(crate) fn encode(slots: &[Slot], out: &mut Vec<u8>) -> Result<(), StateError> {
        let images: Vec<SlotImage> = slots
            .iter()
            .map(|slot| match slot {
                Slot::Count(count) => SlotImage::Count(*count),
                Slot::SumInt(sum) => SlotImage::Sum(Value::Int(*sum)),
                Slot::SumFloat(sum) => SlotImage::Sum(Value::Float(*sum)),
                Slot::Avg { sum, count } => SlotImage::Avg { sum: *sum, count: *count },
                Slot::Other(accumulator) => SlotImage::Other(accumulator.state()),
            })
            .collect();
        encode_into(&images, out).map_err(|message| StateError::Codec { message })
    }

    /// Slots from their encoding, checked against the aggregates.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<Slots, StateError> {
        let images: Vec<SlotImage> = decode_exact(bytes).map_err(|message| StateError::Codec { message })?;
        if images.len() != self.specs.len() {
            let message = format!("{} aggregate values for {} aggregates", images.len(), self.specs.len());
            return Err(StateError::Codec { message });
        }
        let slots = self.specs.iter().zip(images).map(|(spec, image)| Aggregates::restore_slot(spec, image));
        slots.collect::<Result<Vec<Slot>, StateError>>().map(Slots::from_vec)
    }

    fn restore_slot(spec: &AggregateSpec, image: SlotImage) -> Result<Slot, StateError> {
        let mismatch = |found: &str| StateError::Codec {
            message: format!("a stored {found} value for the aggregate `{}`", spec.source()),
        };
        match (Aggregates::fresh_slot(spec), image) {
            (Slot::Count(_), SlotImage::Count(count)) => Ok(Slot::Count(count)),
            (Slot::SumInt(_) | Slot::SumFloat(_), SlotImage::Sum(Value::Int(sum))) => Ok(Slot::SumInt(sum)),
            (Slot::SumInt(_) | Slot::SumFloat(_), SlotImage::Sum(Value::Float(sum))) => Ok(Slot::SumFloat(sum)),
            (Slot::Avg { .. }, SlotImage::Avg { sum, count }) if count >= 0 => Ok(Slot::Avg { sum, count }),
            (Slot::Other(_), SlotImage::Other(state)) => Accumulator::restore(spec, state)
                .map(|accumulator| Slot::Other(Box::new(accumulator)))
                .map_err(|error| StateError::Codec { message: error.to_string() }),
            (_, SlotImage::Count(_)) => Err(mismatch("count")),
            (_, SlotImage::Sum(_)) => Err(mismatch("sum")),
            (_, SlotImage::Avg { .. }) => Err(mismatch("avg")),
            (_, SlotImage::Other(_)) => Err(mismatch("accumulator")),
        }
    }
}

/// The codec of a running aggregation's per-key values.
struct SlotsCodec {
    aggregates: Aggregates,
}

impl StateCodec<Slots> for SlotsCodec {
    fn encode(&self, slots: &Slots, out: &mut Vec<u8>) -> Result<(), StateError> {
        Aggregates::encode(slots, out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<Slots, StateError> {
        self.aggregates.decode(bytes)
    }
}

/// The key of a record, per input of the chain.
pub(crate) struct Keys {
    selectors: Vec<Selector>,
}

impl Keys {
    pub(crate) fn new(keys: &[Expr]) -> Keys {
        Keys { selectors: keys.iter().map(Selector::new).collect() }
    }

    /// The key of `row` when it is an int field of it, read in place: the per-batch path
    /// builds the key from the payload rather than moving a `Value` returned through memory
    /// (see `put`).
    #[inline(always)]
    pub(crate) fn int_field(&self, input: usize, row: &[Value]) -> Option<i64> {
        match (self.selectors.get(input), row) {
            (Some(Selector::Field(position)), row) => match row.get(*position) {
                Some(Value::Int(x)) => Some(*x),
                _ => None,
            },
            _ => None,
        }
    }

    /// The key of `row`, which arrived on input `input`.
    #[inline]
    pub(crate) fn key(&self, context: &OperatorContext, input: usize, row: &[Value]) -> Result<Value, OperatorError> {
        let selector = self.selectors.get(input);
        let selector = selector.unwrap_or_else(|| panic!("input {input} of {} keyed inputs", self.selectors.len()));
        match selector.select(row) {
            // Rebuilt from the payload rather than copied whole (see `put`).
            Ok(Cow::Borrowed(Value::Int(x))) => Ok(Value::Int(*x)),
            Ok(value) => Ok(value.into_owned()),
            Err(error) => Err(context.error(error)),
        }
    }
}

/// A running keyed aggregation: emits the key and the updated aggregates for every record.
pub(crate) struct RunningAggregate<B> {
    context: OperatorContext,
    keys: Keys,
    aggregates: Aggregates,
    backend: B,
    values: ValueState<Slots>,
    output: Row,
}

impl<B: KeyedStateBackend> RunningAggregate<B> {
    /// The aggregation over `backend`, which holds no state yet.
    pub(crate) fn new(context: OperatorContext, specs: Vec<AggregateSpec>, keys: Vec<Expr>, mut backend: B) -> Self {
        let aggregates = Aggregates::new(specs);
        let values = backend.register_value("aggregates", SlotsCodec { aggregates: aggregates.clone() });
        let output = vec![Value::Null; 1 + aggregates.len()];
        RunningAggregate { context, keys: Keys::new(&keys), aggregates, backend, values, output }
    }
}

impl<B: KeyedStateBackend + Send> Operator for RunningAggregate<B> {
    fn process(&mut self, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        self.process_input(0, row, out)
    }

    fn process_input(&mut self, input: usize, row: &[Value], out: &mut dyn Collector) -> Result<(), OperatorError> {
        let key = self.keys.key(&self.context, input, row)?;
        self.backend.set_current_key(key).map_err(|error| self.context.error(error))?;
        let aggregates = &self.aggregates;
        let slots = self.backend.entry(self.values, Namespace::Global, || aggregates.fresh());
        let slots = slots.map_err(|error| self.context.error(error))?;
        aggregates.add(slots, row).map_err(|error| self.context.error(error))?;
        aggregates.results(slots, &mut self.output[1..]);
        self.output[0] = self.backend.current_key().clone();
        out.collect(&self.output)
    }

    fn snapshot(&mut self, _checkpoint: CheckpointId) -> Result<OperatorSnapshot, OperatorError> {
        let keyed = self.backend.snapshot().map_err(|error| self.context.error(error))?;
        Ok(OperatorSnapshot { keyed: Some(keyed), items: Vec::new(), scalars: None })
    }

    fn set_native_snapshots(&mut self, native: bool) {
        self.backend.set_native_snapshots(native);
    }

    fn restore(&mut self, state: &RestoredState<'_>) -> Result<(), OperatorError> {
        self.backend.restore(&state.keyed).map_err(|error| self.context.error(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::compile_aggregate;
    use crate::row::Schema;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => any::<i64>().prop_map(Value::Int),
            3 => (-5i64..5).prop_map(Value::Int),
            2 => (i64::MAX - 3..=i64::MAX).prop_map(Value::Int),
            2 => (-1e6f64..1e6).prop_map(Value::Float),
            1 => Just(Value::Null),
            1 => Just(Value::str("x")),
            1 => Just(Value::Bool(true)),
        ]
    }

    const SOURCES: [&str; 9] =
        ["count()", "sum(a)", "avg(a)", "sum(i)", "sum(f)", "avg(i)", "sum(i * 2)", "min(a)", "first(a)"];

    fn row(value: &Value) -> Row {
        let (int, float) = match value {
            Value::Int(x) => (Value::Int(*x), Value::Float(*x as f64)),
            Value::Float(x) => (Value::Int(*x as i64), Value::Float(*x)),
            _ => (Value::Int(1), Value::Float(1.0)),
        };
        vec![value.clone(), int, float]
    }

    proptest! {
        #[test]
        fn inline_slots_match_expr_accumulators(
            source in 0..SOURCES.len(),
            values in proptest::collection::vec(value(), 0..20),
            split in 0usize..20,
        ) {
            let schema = Schema::new([("a", Type::Any), ("i", Type::Int), ("f", Type::Float)]);
            let spec = compile_aggregate(SOURCES[source], &schema).unwrap();
            let aggregates = Aggregates::new(vec![spec.clone()]);
            let (mut slots, mut accumulator) = (aggregates.fresh(), Accumulator::new(&spec));
            let (mut partial, mut partial_accumulator) = (aggregates.fresh(), Accumulator::new(&spec));
            for (position, value) in values.iter().enumerate() {
                let row = row(value);
                prop_assert_eq!(aggregates.add(&mut slots, &row), accumulator.add(&row));
                prop_assert_eq!(slots[0].result(), accumulator.result());
                if position >= split {
                    let _ = (aggregates.add(&mut partial, &row), partial_accumulator.add(&row));
                }
            }
            if spec.can_merge() {
                prop_assert_eq!(aggregates.merge(&mut slots, &partial), accumulator.merge(&partial_accumulator));
                prop_assert_eq!(slots[0].result(), accumulator.result());
            }
            let mut bytes = Vec::new();
            Aggregates::encode(&slots, &mut bytes).unwrap();
            let decoded = aggregates.decode(&bytes).unwrap();
            prop_assert_eq!(decoded[0].result(), slots[0].result());
        }
    }
}
